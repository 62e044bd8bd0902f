"""Selection rules: how a search's final supernet becomes one discrete architecture.

A differentiable search ends with continuous architecture weights and a supernet trained under
them; the rule that turns the two into a cell is a choice of its own (Wang et al., "Rethinking
architecture selection in differentiable NAS", ICLR 2021, §3-4). Every rule here works on weights
shaped (edges, ops) per cell kind, in which each node keeps `inputs_per_node` incoming edges and
one non-`none` op per kept edge (the DARTS cell spaces):

- `argmax`: the papers' rule (DARTS §2.4): per node the edges with the strongest non-`none` op,
  each with that op. What `Strategy.derive` returns, bit for bit.
- `perturbation` (DARTS-PT, ruocwang/darts-pt `sota/cnn/projection.py`): edges in a seeded random
  order; on each, every candidate op is removed in turn (its weight set to zero, no renormalising)
  and the op whose removal lowers the supernet's validation accuracy most is kept (the edge becomes
  one-hot; equal accuracies go to the larger validation loss, since a few batches tie often); then per node, each input edge is removed in turn and the edges whose removal hurts most
  are kept. `finetune_steps` weight steps follow every decision (the paper tunes; 0 here by default).
- `sampled`: `samples` architectures drawn from the learned distribution (the strategy's `draw`:
  edges in proportion to their strength, ops to their weight; uniform for random search), each
  scored with the inherited weights on the same validation batches, the best kept.

`skip_cap` > 0 caps skip connections in the normal cell (P-DARTS, Chen et al. 2019, §3.3): the
cap's worth of skip edges that rank highest stay, every other skip edge takes its next-best op.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from archsearch.config import Choice, opt
from archsearch.errors import ConfigError
from archsearch.precise_bn import recompute_bn_stats
from archsearch.registry import Registry

SKIP, NONE = "skip_connect", "none"
Weights = dict[str, torch.Tensor]


class Rule(Choice):
    argmax = "argmax"
    perturbation = "perturbation"
    sampled = "sampled"


class BnMode(Choice):
    batch = "batch"  # every scored forward normalises with its own batch's statistics
    recompute = "recompute"  # running statistics recomputed on training batches for each candidate first


@dataclass
class SelectionConfig:
    """How the final architecture is selected from the supernet (strategies/selection.py)."""

    rule: Rule = opt(Rule.argmax, "argmax: the papers' rule; perturbation: DARTS-PT; sampled: best of "
                                  "`samples` draws scored on the supernet")
    samples: int = opt(50, "sampled: architectures drawn and scored", low=1)
    batches: int = opt(4, "validation batches every candidate is scored on (the same ones for all)", low=1)
    bn: BnMode = opt(BnMode.batch, "batch-norm statistics while scoring: the batch's own, or recomputed "
                                   "on `bn_batches` training batches per candidate")
    bn_batches: int = opt(4, "bn=recompute: training batches per recomputation", low=1)
    finetune_steps: int = opt(0, "perturbation: supernet weight steps after each decision", low=0)
    skip_cap: int = opt(0, "at most this many skip connections in the normal cell (P-DARTS); 0 = no cap", low=0)
    seed: int = opt(0, "perturbation: order of the edges", low=0)


SELECTIONS: Registry[Callable] = Registry("selection rule")


# -- scoring with inherited weights -----------------------------------------------------------------
class _Bound(nn.Module):
    """The supernet with its architecture weights fixed: a plain `module(x)` for BN recomputation."""

    def __init__(self, model: nn.Module, weights: Weights):
        super().__init__()
        self.model, self.weights = model, weights

    def forward(self, x):
        return self.model(x, self.weights)


class Scorer:
    """The objective's main metric of the supernet under given architecture weights, averaged over
    fixed validation batches (minus the loss where the main metric is set-level, e.g. mIoU).

    The supernet's buffers are restored after every score, so scoring never changes the network.
    `train_batches` (bn=recompute) are the batches the running statistics are recomputed on.
    """

    def __init__(self, model: nn.Module, objective, val_batches: Sequence, train_batches: Sequence = (),
                 bn: str = "batch", reduce: Callable[[float], float] = lambda v: v):
        if bn == "recompute" and not train_batches:
            raise ConfigError("selection.bn=recompute needs training batches (selection.bn_batches >= 1)")
        self.model, self.objective = model, objective
        self.val = list(val_batches)
        self.train = list(train_batches)
        self.bn = str(bn)
        self.reduce = reduce  # e.g. the average over torchrun ranks
        self.calls = 0
        self.last_loss = 0.0  # the mean validation loss of the last score: breaks ties between equal metrics

    @torch.no_grad()
    def __call__(self, weights: Weights) -> float:
        self.calls += 1
        device = self.val[0][0].device
        weights = {k: v.to(device) for k, v in weights.items()}
        saved = {n: b.clone() for n, b in self.model.named_buffers()}
        training = self.model.training
        try:
            if self.bn == "recompute":
                recompute_bn_stats(_Bound(self.model, weights),
                                   (self.objective.prepare(*b)[0] for b in self.train))
                self.model.eval()
            else:
                self.model.train()
            total = loss = 0.0
            for batch in self.val:
                inputs, targets = self.objective.prepare(*batch)
                out = self.model(inputs, weights)
                out = out.float() if out.dtype == torch.bfloat16 else out
                m = self.objective.metrics(out, targets)
                batch_loss = self.objective.loss(out, targets).item()
                loss += batch_loss
                total += m.get(self.objective.main_metric, -batch_loss)
        finally:
            for n, b in self.model.named_buffers():
                b.copy_(saved[n])
            self.model.train(training)
        self.last_loss = self.reduce(loss / len(self.val))
        return self.reduce(total / len(self.val))


# -- the weight view every rule works on ------------------------------------------------------------
@dataclass
class EdgeView:
    """What the rules need of a space: per cell kind the candidate names of every edge, and the rows
    of each node's incoming edges."""

    kinds: list[str]
    names: dict[str, list[tuple[str, ...]]]
    groups: list[slice]
    inputs_per_node: int = 2

    @classmethod
    def of(cls, space) -> "EdgeView":
        kinds = list(space.arch_shapes())
        panels = {k: space.weight_panels(k) for k in kinds}
        if any(p is None for p in panels.values()):
            raise ConfigError(f"selection rules need a space whose weights are edges x ops; {space.name!r} "
                              "has no such weights")
        return cls(kinds, {k: [tuple(n) for n in panels[k][0]] for k in kinds}, space.edge_groups(),
                   getattr(space, "inputs_per_node", 2))

    def ops(self, kind: str, e: int) -> list[int]:
        """Columns an edge may select (never `none`)."""
        return [i for i, n in enumerate(self.names[kind][e]) if n != NONE]


def _one_hot_rows(weights: Weights, choice: dict[str, dict[int, int]]) -> Weights:
    """Weights in which only the chosen (edge -> op) entries are 1: `space.derive` reads them back."""
    out = {k: v.clone() for k, v in weights.items()}
    for kind, edges in choice.items():
        w = torch.zeros_like(out[kind])
        for e, i in edges.items():
            w[e, i] = 1.0
        out[kind] = w
        out.pop(kind + "_edges", None)
    return out


def cap_skips(view: EdgeView, choice: dict[str, dict[int, int]], rank: Callable[[str, int], float],
              next_op: Callable[[str, int, int], Optional[int]], cap: int) -> list[dict]:
    """At most `cap` skip connections in the normal cell: the skip edges ranked highest by `rank`
    keep theirs, every other takes `next_op` (its best non-skip op). Returns what changed."""
    if cap <= 0 or "normal" not in choice:
        return []
    cell = choice["normal"]
    skips = [e for e, i in cell.items() if view.names["normal"][e][i] == SKIP]
    changed = []
    for e in sorted(skips, key=lambda e: (-rank("normal", e), e))[cap:]:
        op = next_op("normal", e, cell[e])
        if op is not None:
            changed.append({"edge": e, "from": SKIP, "to": view.names["normal"][e][op]})
            cell[e] = op
    return changed


def _choice_of(view: EdgeView, space, arch) -> dict[str, dict[int, int]]:
    """(kind -> {edge row: op column}) of a discrete architecture, from its one-hot weights."""
    hot = space.one_hot(arch)
    return {k: {int(e): int(i) for e, i in hot[k].nonzero().tolist()} for k in view.kinds}


# -- the rules --------------------------------------------------------------------------------------
@dataclass
class Selection:
    """A selection's inputs: the strategy (weights, draws), the space, a scorer, the options, and
    `tune(weights, steps)` for the weight steps between decisions."""

    strategy: Any
    scorer: Scorer
    cfg: SelectionConfig
    rng: random.Random
    tune: Optional[Callable[[Weights, int], None]] = None

    @property
    def space(self):
        return self.strategy.space


@SELECTIONS.register("argmax")
def argmax(sel: Selection) -> tuple[Any, dict]:
    weights = sel.strategy.selection_weights()
    arch = sel.space.derive(weights)
    record: dict = {}
    if sel.cfg.skip_cap:
        view = EdgeView.of(sel.space)
        choice = _choice_of(view, sel.space, arch)
        w = {k: (weights[k] * weights[k + "_edges"].unsqueeze(1) if k + "_edges" in weights else weights[k]).double()
             for k in view.kinds}

        def next_op(kind, e, current):
            cands = [i for i in view.ops(kind, e) if view.names[kind][e][i] != SKIP]
            return max(cands, key=lambda i: (w[kind][e, i].item(), -i)) if cands else None

        record["skip_cap"] = cap_skips(view, choice, lambda k, e: w[k][e, choice[k][e]].item(), next_op,
                                       sel.cfg.skip_cap)
        arch = sel.space.derive(_one_hot_rows(weights, choice))
    return arch, record


@SELECTIONS.register("perturbation")
def perturbation(sel: Selection) -> tuple[Any, dict]:
    view = EdgeView.of(sel.space)
    weights = {k: v.detach().clone() for k, v in sel.strategy.selection_weights().items()}
    score = sel.scorer
    record: dict = {"base": score(weights), "ops": [], "edges": []}
    order = [(k, e) for k in view.kinds for e in range(weights[k].shape[0])]
    random.Random(sel.cfg.seed).shuffle(order)
    op_rank: dict[tuple[str, int], list[int]] = {}  # per edge, ops from most to least needed
    for kind, e in order:
        after, loss = {}, {}
        for i in view.ops(kind, e):
            w = {k: v.clone() for k, v in weights.items()}
            w[kind][e, i] = 0.0
            after[i], loss[i] = score(w), score.last_loss
        op_rank[(kind, e)] = sorted(after, key=lambda i: (after[i], -loss[i], i))  # equal accuracy: larger loss
        keep = op_rank[(kind, e)][0]
        row = torch.zeros_like(weights[kind][e])
        row[keep] = 1.0
        weights[kind][e] = row
        record["ops"].append({"kind": kind, "edge": e, "kept": view.names[kind][e][keep],
                              "accuracy_without": {view.names[kind][e][i]: a for i, a in after.items()}})
        if sel.cfg.finetune_steps and sel.tune:
            sel.tune(weights, sel.cfg.finetune_steps)
    drop: dict[tuple[str, int], float] = {}  # accuracy when the edge is removed (lower: more needed)
    for kind in view.kinds:
        for g in view.groups:
            rows = list(range(g.start, g.stop))
            loss = {}
            for e in rows:
                w = {k: v.clone() for k, v in weights.items()}
                w[kind][e] = 0.0
                drop[(kind, e)], loss[e] = score(w), score.last_loss
            kept = sorted(rows, key=lambda e: (drop[(kind, e)], -loss[e], e))[: view.inputs_per_node]
            for e in rows:
                if e not in kept:
                    weights[kind][e] = 0.0
            record["edges"].append({"kind": kind, "rows": rows, "kept": sorted(kept),
                                    "accuracy_without": [drop[(kind, e)] for e in rows]})
            if sel.cfg.finetune_steps and sel.tune:
                sel.tune(weights, sel.cfg.finetune_steps)
    choice = {k: {e: int(weights[k][e].argmax()) for e in range(weights[k].shape[0]) if weights[k][e].any()}
              for k in view.kinds}

    def next_op(kind, e, current):
        return next((i for i in op_rank[(kind, e)] if view.names[kind][e][i] != SKIP), None)

    record["skip_cap"] = cap_skips(view, choice, lambda k, e: -drop[(k, e)], next_op, sel.cfg.skip_cap)
    record["scores"] = score.calls
    return sel.space.derive(_one_hot_rows(weights, choice)), record


@SELECTIONS.register("sampled")
def sampled(sel: Selection) -> tuple[Any, dict]:
    space = sel.space
    view = EdgeView.of(space) if sel.cfg.skip_cap else None
    scored = []
    draws = 0
    while len(scored) < sel.cfg.samples:
        arch = sel.strategy.draw(sel.rng)
        draws += 1
        if view is not None and _skips(view, space, arch) > sel.cfg.skip_cap:
            if draws > 1000 * sel.cfg.samples:
                raise ConfigError(f"selection.skip_cap={sel.cfg.skip_cap}: the distribution almost never "
                                  "draws so few skip connections")
            continue
        scored.append((sel.scorer(space.one_hot(arch)), arch))
    best = max(scored, key=lambda t: t[0])  # the first of equal scores
    return best[1], {"scores": [s for s, _ in scored], "best": best[0], "draws": draws}


def _skips(view: EdgeView, space, arch) -> int:
    return sum(view.names["normal"][e][i] == SKIP for e, i in _choice_of(view, space, arch)["normal"].items())


def draw_from_weights(space, weights: Weights, rng: random.Random):
    """An architecture drawn from soft weights: per node `inputs_per_node` distinct edges in proportion
    to their strength (strongest non-`none` op, times the PC-DARTS edge weight), then each kept edge's
    op in proportion to its weight among the non-`none` ops."""
    view = EdgeView.of(space)
    choice: dict[str, dict[int, int]] = {}
    for kind in view.kinds:
        w = weights[kind].detach().double().cpu()
        if kind + "_edges" in weights:
            w = w * weights[kind + "_edges"].detach().double().cpu().unsqueeze(1)
        cell = {}
        for g in view.groups:
            rows = list(range(g.start, g.stop))
            strength = [max(w[e, i].item() for i in view.ops(kind, e)) for e in rows]
            for _ in range(min(view.inputs_per_node, len(rows))):
                k = _pick(rng, strength)
                e = rows.pop(k)
                strength.pop(k)
                ops = view.ops(kind, e)
                cell[e] = ops[_pick(rng, [w[e, i].item() for i in ops])]
        choice[kind] = cell
    return space.derive(_one_hot_rows({k: weights[k].detach().cpu() for k in view.kinds}, choice))


def _pick(rng: random.Random, mass: list[float]) -> int:
    """An index drawn in proportion to non-negative masses (uniform when they are all zero)."""
    total = sum(max(m, 0.0) for m in mass)
    if total <= 0:
        return rng.randrange(len(mass))
    r, acc = rng.random() * total, 0.0
    for k, m in enumerate(mass):
        acc += max(m, 0.0)
        if r < acc:
            return k
    return len(mass) - 1


def select(sel: Selection) -> tuple[Any, dict]:
    """The architecture the configured rule selects, and a record of how (scores, decisions)."""
    arch, record = SELECTIONS.get(str(sel.cfg.rule))(sel)
    return arch, {"rule": str(sel.cfg.rule), **record}
