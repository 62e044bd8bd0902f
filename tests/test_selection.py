"""Selection rules (strategies/selection.py) on hand-made supernets whose right answer is known, and
`archsearch derive` / `strategy.selection` end to end."""
import json
import random

import pytest
import torch
from helpers import tiny_space
from torch import nn

from archsearch.cli import main
from archsearch.config import SearchConfig, StrategyConfig, component
from archsearch.objectives.supervised import Supervised
from archsearch.spaces.darts.genotype import node_offsets
from archsearch.strategies import create_strategy
from archsearch.strategies.selection import Scorer, Selection, SelectionConfig, select


class Info:
    num_classes = 2
    in_channels = 1
    image_size = 8


class LinearSupernet(nn.Module):
    """A 'supernet' whose validation accuracy is a known, increasing function of S(w) = <w, U>:
    sample n is right when S > its threshold x_n, so accuracy = share of thresholds below S."""

    def __init__(self, utility: dict[str, torch.Tensor]):
        super().__init__()
        self.utility = utility
        self.register_buffer("calls", torch.zeros(()))  # a buffer: scoring must leave it as it was

    def forward(self, x, weights):
        self.calls += 1
        s = sum((weights[k].double() * u).sum() for k, u in self.utility.items())
        return torch.stack([s - x[:, 0], torch.zeros_like(x[:, 0])], dim=1)


def _setup(strategy="darts", nodes=4, seed=0):
    space = tiny_space(nodes=nodes)
    g = torch.Generator().manual_seed(seed)
    shapes = space.arch_shapes()
    # well separated utilities, so every removal changes the accuracy by many thresholds
    utility = {k: (torch.randperm(s[0] * s[1], generator=g).double().reshape(s) + 1) / 10 for k, s in shapes.items()}
    strat = create_strategy(component(StrategyConfig, strategy), space)
    if strategy != "random":
        with torch.no_grad():
            for k, a in strat.alphas.items():
                a.copy_(torch.randn(a.shape, generator=g, dtype=a.dtype))
    model = LinearSupernet(utility)
    hi = float(sum(u.abs().sum() for u in utility.values()))
    thresholds = torch.linspace(0, hi, 50_001, dtype=torch.float64).unsqueeze(1)  # S lies in [0, hi]
    val = [(thresholds, torch.zeros(len(thresholds), dtype=torch.long))]
    objective = Supervised(SearchConfig().objective, Info)
    return space, strat, model, utility, Scorer(model, objective, val)


def _select(strat, scorer, **cfg):
    return select(Selection(strat, scorer, SelectionConfig(**cfg), random.Random(0)))


def _cell(space, kind, chosen: dict[int, int]):
    """Genotype cell of (edge -> op) choices, in the space's node order (as derive writes it)."""
    names = space.weight_panels(kind)[0]
    out = []
    for i, start in enumerate(node_offsets(space.nodes)):
        for e in sorted(e for e in chosen if start <= e < start + 2 + i):
            out.append((names[e][chosen[e]], e - start))
    return out


def test_argmax_is_the_strategy_derivation():
    space, strat, model, _, scorer = _setup()
    arch, record = _select(strat, scorer, rule="argmax")
    assert arch == strat.derive() and record == {"rule": "argmax"}


def test_perturbation_keeps_the_ops_and_edges_whose_removal_hurts_most():
    space, strat, model, u, scorer = _setup()
    w = {k: v.double() for k, v in strat.selection_weights().items()}
    buffers_before = model.calls.clone()
    arch, record = _select(strat, scorer, rule="perturbation")
    assert torch.equal(model.calls, buffers_before)  # scoring restores the buffers
    for kind in ("normal", "reduce"):
        names = space.weight_panels(kind)[0]
        # removing op i of edge e lowers S by w[e, i] u[e, i]: the op with the largest product is kept
        op = {e: max((i for i, n in enumerate(names[e]) if n != "none"), key=lambda i: (w[kind][e, i] * u[kind][e, i]))
              for e in range(len(names))}
        # the edge then weighs 1 on that op: removing it lowers S by u[e, op]; two per node stay
        kept = {}
        for i, start in enumerate(node_offsets(space.nodes)):
            rows = range(start, start + 2 + i)
            for e in sorted(rows, key=lambda e: -u[kind][e, op[e]])[:2]:
                kept[e] = op[e]
        got = [tuple(p) for p in getattr(arch, kind)]
        assert sorted(got) == sorted(_cell(space, kind, kept)), kind
    assert arch != strat.derive()  # the hand-made case separates the rules
    assert record["scores"] == 1 + 2 * 14 * 7 + 2 * 14  # base, each non-none op of each edge, each edge


def test_sampled_on_uniform_weights_finds_the_best_of_a_small_space():
    space, strat, model, u, scorer = _setup("random", nodes=1)
    arch, record = _select(strat, scorer, rule="sampled", samples=300)
    names = space.weight_panels("normal")[0]
    for kind in ("normal", "reduce"):
        best = {e: max((i for i, n in enumerate(names[e]) if n != "none"), key=lambda i: u[kind][e, i])
                for e in range(2)}
        assert sorted(tuple(p) for p in getattr(arch, kind)) == sorted(_cell(space, kind, best))
    assert len(record["scores"]) == 300 and record["best"] == max(record["scores"])


def test_sampled_draws_ops_from_the_learned_distribution():
    space, strat, model, u, scorer = _setup()
    with torch.no_grad():  # every edge puts almost all its mass on one op
        for a in strat.alphas.values():
            a.mul_(50)
    w = strat.selection_weights()
    arch, record = _select(strat, scorer, rule="sampled", samples=5)
    for kind in ("normal", "reduce"):
        names = space.weight_panels(kind)[0]
        for k, (op, src) in enumerate(getattr(arch, kind)):
            e = node_offsets(space.nodes)[k // 2] + src
            assert op == names[e][int(w[kind][e].argmax())]
    assert len(record["scores"]) == 5


def test_skip_cap_keeps_the_strongest_skips_and_gives_the_others_their_next_op():
    space, strat, model, u, scorer = _setup(nodes=2)
    names = space.weight_panels("normal")[0]
    skip = names[0].index("skip_connect")
    with torch.no_grad():
        a = strat.alphas["normal"]
        a.zero_()
        for e, strength in enumerate([5.0, 4.0, 3.0, 2.0, 1.0]):  # every edge prefers skip, then sep_conv_3x3
            a[e, skip] = strength
            a[e, names[e].index("sep_conv_3x3")] = strength - 0.5
    plain, _ = _select(strat, scorer, rule="argmax")
    assert [op for op, _ in plain.normal] == ["skip_connect"] * 4
    capped, record = _select(strat, scorer, rule="argmax", skip_cap=1)
    assert [op for op, _ in capped.normal] == ["skip_connect", "sep_conv_3x3", "sep_conv_3x3", "sep_conv_3x3"]
    assert [src for _, src in capped.normal] == [src for _, src in plain.normal]
    assert len(record["skip_cap"]) == 3


def _tiny_search(tmp_path, strategy_overrides=()):
    out = tmp_path / "search"
    gen = ["data.name=generated", "data.generated.image_size=16", "data.generated.channels=1",
           "data.generated.num_classes=4", "data.generated.num_samples=64", "data.batch_size=8", "data.subset=0",
           "space.init_channels=4", "space.layers=3", "steps_per_epoch=2", "optim.epochs=1", "val_batches=1"]
    assert main(["search", "darts_fashionmnist", *gen, *strategy_overrides, "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.mark.slow
def test_derive_command_reproduces_the_search_and_applies_other_rules(tmp_path, capsys):
    run = _tiny_search(tmp_path)
    assert main(["derive", str(run), "--selection", "argmax"]) == 0
    assert json.loads((run / "derived/argmax/genotype.json").read_text()) == json.loads(
        (run / "genotype.json").read_text())
    assert main(["derive", str(run), "--selection", "perturbation", "--batches", "1", "--out",
                 str(tmp_path / "pt")]) == 0
    summary = json.loads((tmp_path / "pt/summary.json").read_text())
    assert summary["rule"] == "perturbation" and summary["record"]["scores"] == 1 + 2 * 14 * 7 + 2 * 14
    capsys.readouterr()
    # the same rule again on the same directory is the finished derivation; other options are refused
    assert main(["derive", str(run), "--selection", "perturbation", "--batches", "1", "--out",
                 str(tmp_path / "pt")]) == 0
    assert main(["derive", str(run), "--selection", "perturbation", "--batches", "2", "--out",
                 str(tmp_path / "pt")]) == 2
    assert "different config" in capsys.readouterr().err
    assert main(["derive", str(tmp_path / "nowhere"), "--selection", "sampled"]) == 2


def test_the_search_applies_its_configured_rule(tmp_path):
    run = _tiny_search(tmp_path, ["strategy.selection.rule=sampled", "strategy.selection.samples=3",
                                  "strategy.selection.batches=1"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["selection"]["rule"] == "sampled" and len(summary["selection"]["scores"]) == 3
