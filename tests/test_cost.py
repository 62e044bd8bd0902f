"""Analytic costs of DARTS evaluation networks against the networks as built.

`spaces/darts/cost.py` prices a genotype from layer formulas; `models/cost.py` counts the
parameters and conv/linear mult-adds of the built network with forward hooks. They must agree
exactly for every genotype, size and space: the analytic count is what `archsearch genotype`,
a search's summary.json and the correlation study's cost window report. Networks are built on
the meta device, so counting a full-size network costs no compute.
"""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from archsearch.config import ModelConfig, SpaceConfig, component
from archsearch.models import create_family
from archsearch.models.cost import count_macs, count_params
from archsearch.objectives.supervised import classifier_head
from archsearch.spaces import create_space
from archsearch.spaces.darts.cost import network_cost
from archsearch.spaces.darts.genotype import published_genotypes
from archsearch.studies.config import CorrelateConfig
from archsearch.studies.correlate import in_window, sample_archs

# The papers' parameter counts (millions; CIFAR C=36 x 20 cells, ImageNet C=48 x 14 cells; docs/methods/darts.md §1.8).
PUBLISHED_PARAMS_M = {
    "DARTS_V2": (3.349, 4.719), "DARTS_V1": (3.169, 4.510), "PC_DARTS_cifar": (3.635, 5.271),
    "PC_DARTS_image": (3.722, 5.342), "MILENAS_r101_e50_48_n7r3": (3.874, 5.380),
    "MILENAS_V2_r2_e100": (2.858, 4.137), "MILENAS_r118_e100_92_n4r1": (2.866, 4.192),
    "MILENAS_v2_r5_e200": (2.090, 3.261), "MILENAS_GDAS_MIXED_LEVEL2": (4.033, 5.594),
}
CIFAR = dict(imagenet=False, c=36, layers=20, classes=10, size=32)
IMAGENET = dict(imagenet=True, c=48, layers=14, classes=1000, size=224)


def built(g, imagenet, c, layers, classes, size, in_ch=3, reductions=2) -> tuple[int, int]:
    """(params, mult-adds) of the built evaluation network, auxiliary head excluded."""
    family = "darts-imagenet" if imagenet else "darts-cifar"
    cfg = component(ModelConfig, family, init_channels=c, layers=layers, auxiliary=True, reductions=reductions)
    with torch.device("meta"):
        net = create_family(family).build(g, cfg, in_ch, size, lambda ch: classifier_head(ch, classes))
    return count_params(net), count_macs(net, in_ch, size)


def analytic(g, imagenet, c, layers, classes, size, in_ch=3, reductions=2) -> tuple[int, int]:
    cost = network_cost(g, c, layers, classes, in_ch, size, imagenet=imagenet, reductions=reductions)
    return cost.params, cost.macs


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS_M))
def test_published_genotypes_priced_as_built_with_the_papers_parameter_counts(name):
    g = published_genotypes()[name]
    for size, paper_m in zip((CIFAR, IMAGENET), PUBLISHED_PARAMS_M[name]):
        params, macs = built(g, **size)
        assert analytic(g, **size) == (params, macs), size
        assert round(params / 1e6, 3) == paper_m


def test_reduction_cell_ops_on_intermediate_nodes_run_at_the_halved_size():
    # PC_DARTS_cifar's reduction cell reads node 0 (state 2) twice: priced at the cell's input
    # size these ops made the CIFAR network 611.6M mult-adds instead of the 556.7M it has.
    g = published_genotypes()["PC_DARTS_cifar"]
    assert any(src >= 2 for _, src in g.reduce)
    assert round(network_cost(g).macs / 1e6, 1) == 556.7


def _sizes(rng: random.Random) -> dict:
    """A small network of either family on an odd or even input side."""
    imagenet = rng.random() < 0.4
    size = rng.choice([9, 13, 17, 31, 32, 45, 64, 97] if imagenet else [5, 7, 9, 13, 16, 21, 28, 32])
    return dict(imagenet=imagenet, c=rng.choice([2, 4, 6, 8]), layers=rng.randint(3, 8),
                classes=rng.randint(2, 12), size=size, in_ch=rng.choice([1, 3]), reductions=rng.choice([1, 2, 2]))


SAMPLED = [("darts", True), *(pytest.param(*c, marks=pytest.mark.slow) for c in [
    ("darts", False), ("darts-s1", False), ("darts-s2", False), ("darts-s3", True), ("darts-s4", False)])]


@pytest.mark.parametrize("space,unnas", SAMPLED)
def test_sampled_genotypes_priced_as_built(space, unnas):
    """64 random cells per space (384 in all), random network sizes; `unnas` draws include `none`
    ops and nodes whose two inputs are the same state."""
    sp = create_space(component(SpaceConfig, space))
    rng = random.Random(f"{space}-{unnas}")
    repeated_inputs = none_ops = 0
    for _ in range(64):
        g = sp.sample(rng, unnas=unnas)
        size = _sizes(rng)
        assert analytic(g, **size) == built(g, **size), (g, size)
        for cell in (g.normal, g.reduce):
            repeated_inputs += sum(cell[2 * i][1] == cell[2 * i + 1][1] for i in range(len(cell) // 2))
            none_ops += sum(op == "none" for op, _ in cell)
    if unnas:
        assert repeated_inputs > 0 and none_ops > 0


@pytest.mark.slow
def test_search_summary_and_correlation_window_use_the_built_count():
    g = published_genotypes()["PC_DARTS_image"]
    space = create_space(component(SpaceConfig))
    for size in (CIFAR, IMAGENET):
        info = SimpleNamespace(image_size=size["size"], num_classes=size["classes"], in_channels=3)
        cost = space.cost(g, info)
        params, macs = built(g, **size)
        assert (cost["params_M"], cost["mult_adds_M"]) == (params / 1e6, macs / 1e6)
    cfg = CorrelateConfig(num_archs=20, seed=3)
    w = cfg.window
    for arch in sample_archs(cfg):
        params, macs = built(arch, False, w.init_channels, w.layers, w.num_classes, w.image_size, w.in_channels)
        assert w.low <= params / w.reference_params <= w.high and w.low <= macs / w.reference_mult_adds <= w.high
    rng = random.Random(5)
    for _ in range(40):
        arch = space.sample(rng, unnas=True)
        params, macs = built(arch, False, w.init_channels, w.layers, w.num_classes, w.image_size, w.in_channels)
        inside = w.low <= params / w.reference_params <= w.high and w.low <= macs / w.reference_mult_adds <= w.high
        assert in_window(arch, cfg) == inside
