"""The DARTS cell space and the RobustDARTS reduced spaces S1-S4 (docs/methods/darts.md §1, §9)."""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from archsearch.config import Choice, SpaceConfig, opt
from archsearch.errors import ConfigError
from archsearch.spaces.base import SPACES, SearchSpace, cost_record
from archsearch.spaces.darts.cost import network_cost
from archsearch.spaces.darts.genotype import Genotype, derive_cell, edge_sources, node_offsets, sample_cell
from archsearch.spaces.darts.ops import DARTS_OPS
from archsearch.spaces.darts.supernet import DartsSupernet, check_cells


class Stem(Choice):
    auto = "auto"  # the ImageNet stem for inputs of 128 px and more
    cifar = "cifar"
    imagenet = "imagenet"


class Impl(Choice):
    fast = "fast"
    reference = "reference"  # every op evaluated and summed, as in the papers
    batched = "batched"  # the fast path with each op run once for all edges leaving a state (GPUs)


@dataclass
class DartsSpaceConfig(SpaceConfig):
    """The DARTS cell space (`darts`) and the RobustDARTS spaces `darts-s1` .. `darts-s4`."""

    name: str = "darts"
    init_channels: int = opt(16, "channels of the first cells (C)", low=2)
    layers: int = opt(8, "cells; the reductions sit at 1/3 and 2/3 of the depth", low=1)
    nodes: int = opt(4, "intermediate nodes per cell", low=1)
    stem_multiplier: int = opt(3, "the CIFAR stem has stem_multiplier * C channels", low=1)
    stem: Stem = opt(Stem.auto, "the stem before the first cell")
    partial_channels: int = opt(1, "PC-DARTS K: C/K channels go through the ops; 1 = all", low=1)
    impl: Impl = opt(Impl.fast, "the supernet's computation; both give the same function")
    reductions: int = opt(2, "1: only the reduction cell at 1/3 depth (UnNAS segmentation supernet)", low=1, high=2)

    def check(self, where: str) -> None:
        check_cells(self.layers, self.reductions, where)


PARAMETRIC = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "sep_conv_7x7", "conv_7x1_1x7")


class DartsSpace(SearchSpace):
    """Cells of `nodes` intermediate nodes; every edge has its own list of candidate ops."""

    def __init__(self, name: str, cfg, normal_ops: Sequence[Sequence[str]], reduce_ops: Sequence[Sequence[str]]):
        self.name = name
        self.cfg = cfg
        self.nodes = cfg.nodes
        n_edges = len(edge_sources(cfg.nodes))
        if len(normal_ops) != n_edges or len(reduce_ops) != n_edges:
            raise ConfigError(f"space {name}: op lists must cover {n_edges} edges for {cfg.nodes} nodes")
        widths = {len(o) for o in list(normal_ops) + list(reduce_ops)}
        if len(widths) != 1:
            raise ConfigError(f"space {name}: every edge needs the same number of candidates")
        self.op_names = {"normal": [tuple(o) for o in normal_ops], "reduce": [tuple(o) for o in reduce_ops]}
        self.num_ops = widths.pop()
        self.num_edges = n_edges
        c, k = cfg.init_channels, cfg.partial_channels
        if k < 1 or c % k or (c // k) % 2:
            raise ConfigError(f"partial_channels K={k} must divide init_channels={c} into an even C/K")

    # -- shapes -------------------------------------------------------------------------------
    def arch_shapes(self):
        return {"normal": (self.num_edges, self.num_ops), "reduce": (self.num_edges, self.num_ops)}

    def edge_groups(self):
        offsets = node_offsets(self.nodes) + [self.num_edges]
        return [slice(a, b) for a, b in zip(offsets[:-1], offsets[1:])]

    # -- supernet -----------------------------------------------------------------------------
    def _imagenet_stem(self, image_size: int) -> bool:
        return self.cfg.stem == "imagenet" or (self.cfg.stem == "auto" and image_size >= 128)

    def bind(self, in_channels: int, image_size: int) -> None:
        """Refuse an input the stem and the reduction cells would shrink below 1x1 halves."""
        halvings = (3 if self._imagenet_stem(image_size) else 0) + self.cfg.reductions
        if image_size < 2 ** halvings:
            raise ConfigError(f"the supernet's input is {image_size} px, but its stem and {self.cfg.reductions} "
                              f"reduction cell(s) halve it {halvings} times: it needs at least {2 ** halvings} px "
                              "(data.image_size)")

    def build_supernet(self, in_channels: int, image_size: int, head: Callable[[int], nn.Module]) -> nn.Module:
        imagenet = self._imagenet_stem(image_size)
        return DartsSupernet(
            self.op_names, in_channels, head,
            init_channels=self.cfg.init_channels, layers=self.cfg.layers, nodes=self.nodes,
            stem_multiplier=self.cfg.stem_multiplier, imagenet_stem=imagenet,
            partial=self.cfg.partial_channels, impl=str(self.cfg.impl), reductions=self.cfg.reductions,
        )

    # -- discrete architectures ---------------------------------------------------------------
    def derive(self, weights: dict[str, torch.Tensor]) -> Genotype:
        cells = {}
        for kind in ("normal", "reduce"):
            w = weights[kind]
            if kind + "_edges" in weights:  # PC-DARTS: beta rescales whole edges
                w = w * weights[kind + "_edges"].unsqueeze(1)
            cells[kind] = derive_cell(w, self.op_names[kind], self.nodes)
        concat = tuple(range(2, 2 + self.nodes))
        return Genotype(cells["normal"], concat, cells["reduce"], concat)

    def sample(self, rng: random.Random, unnas: bool = False) -> Genotype:
        """`unnas`: the UnNAS sample's distribution (inputs with replacement, `none` allowed)."""
        concat = tuple(range(2, 2 + self.nodes))
        normal = sample_cell(self.op_names["normal"], self.nodes, rng, unnas)
        return Genotype(normal, concat, sample_cell(self.op_names["reduce"], self.nodes, rng, unnas), concat)

    def one_hot(self, arch: Genotype) -> dict[str, torch.Tensor]:
        out = {}
        offsets = node_offsets(self.nodes)
        for kind in ("normal", "reduce"):
            cell = getattr(arch, kind)
            if len(cell) != 2 * self.nodes:
                raise ConfigError(f"genotype has {len(cell) // 2} nodes, space has {self.nodes}")
            w = torch.zeros(self.num_edges, self.num_ops)
            for k, (op, src) in enumerate(cell):
                e = offsets[k // 2] + src
                names = self.op_names[kind][e]
                if op not in names:
                    raise ConfigError(f"op {op!r} is not a candidate of {kind} edge {e} in {self.name}")
                w[e, names.index(op)] = 1.0
            out[kind] = w
        return out

    def arch_to_dict(self, arch: Genotype) -> dict:
        return arch.to_dict()

    def arch_from_dict(self, d: dict) -> Genotype:
        g = Genotype.from_dict(d)
        self.one_hot(g)  # refuses ops or node counts this space does not have
        return g

    def plot_architecture(self, arch: Genotype, title: str):
        from archsearch.viz.cells import plot_genotype

        return plot_genotype(arch, title)

    def weight_panels(self, kind: str):
        return self.op_names[kind], self.nodes

    def cost(self, arch: Genotype, info) -> dict:
        """The papers' evaluation network: C=36 x 20 cells (CIFAR) or C=48 x 14 (ImageNet)."""
        imagenet = info.image_size >= 128
        c, layers = (48, 14) if imagenet else (36, 20)
        cost = network_cost(arch, c, layers, info.num_classes, info.in_channels, info.image_size, imagenet)
        return cost_record(f"evaluation network ({layers} cells, C={c})", cost.params, cost.macs,
                           init_channels=c, layers=layers)

    def describe(self, arch: Genotype) -> dict:
        out = {}
        for kind in ("normal", "reduce"):
            ops = Counter(op for op, _ in getattr(arch, kind))
            out[kind] = {
                "ops": dict(sorted(ops.items())),
                "skip_connect": ops.get("skip_connect", 0),
                "parametric": sum(v for k, v in ops.items() if k in PARAMETRIC),
            }
        return out


def _uniform(ops: Sequence[str], nodes: int) -> list[tuple[str, ...]]:
    return [tuple(ops)] * len(edge_sources(nodes))


# RobustDARTS S1: a pair of candidates per edge, different for normal and reduction cells.
S1_NORMAL = [
    ("skip_connect", "dil_conv_3x3"), ("skip_connect", "dil_conv_5x5"),
    ("skip_connect", "dil_conv_5x5"), ("skip_connect", "sep_conv_3x3"),
    ("skip_connect", "dil_conv_3x3"), ("max_pool_3x3", "skip_connect"),
    ("skip_connect", "sep_conv_3x3"), ("skip_connect", "sep_conv_3x3"),
    ("skip_connect", "dil_conv_3x3"), ("skip_connect", "sep_conv_3x3"),
    ("max_pool_3x3", "skip_connect"), ("skip_connect", "dil_conv_3x3"),
    ("dil_conv_3x3", "dil_conv_5x5"), ("dil_conv_3x3", "dil_conv_5x5"),
]
S1_REDUCE = [
    ("max_pool_3x3", "avg_pool_3x3"), ("max_pool_3x3", "dil_conv_3x3"),
    ("max_pool_3x3", "avg_pool_3x3"), ("max_pool_3x3", "avg_pool_3x3"),
    ("skip_connect", "dil_conv_5x5"), ("max_pool_3x3", "avg_pool_3x3"),
    ("max_pool_3x3", "sep_conv_3x3"), ("skip_connect", "dil_conv_3x3"),
    ("skip_connect", "dil_conv_5x5"), ("max_pool_3x3", "avg_pool_3x3"),
    ("max_pool_3x3", "avg_pool_3x3"), ("skip_connect", "dil_conv_5x5"),
    ("skip_connect", "dil_conv_5x5"), ("skip_connect", "dil_conv_5x5"),
]


def _fixed(name, normal, reduce):
    def make(cfg):
        if cfg.nodes != 4:
            raise ConfigError(f"space {name} is defined for 4 nodes, got nodes={cfg.nodes}")
        return DartsSpace(name, cfg, normal, reduce)

    SPACES.register(name, config=DartsSpaceConfig)(make)


SPACES.register("darts", config=DartsSpaceConfig)(
    lambda cfg: DartsSpace("darts", cfg, _uniform(DARTS_OPS, cfg.nodes), _uniform(DARTS_OPS, cfg.nodes))
)
_fixed("darts-s1", S1_NORMAL, S1_REDUCE)
for _name, _ops in {
    "darts-s2": ("skip_connect", "sep_conv_3x3"),
    "darts-s3": ("none", "skip_connect", "sep_conv_3x3"),
    "darts-s4": ("noise", "sep_conv_3x3"),
}.items():
    _fixed(_name, _uniform(_ops, 4), _uniform(_ops, 4))
