"""The DARTS search network: cells of mixed edges driven by external architecture weights.

The supernet owns only the network weights. The architecture weights arrive with every forward
as a dict {"normal": (edges, ops), "reduce": (edges, ops)} and, for edge normalisation,
{"normal_edges": (edges,), "reduce_edges": (edges,)}; the strategy decides where they come from.

Three formulations are kept: `reference` evaluates every candidate of every edge and sums them
(the papers' code); `fast` runs channels-last, computes relu of each cell state once for every
op and edge reading it, computes the pools (+ BN) of each state once for every edge reading it,
folds each op's architecture weight into its final BN, runs 1x1 convs as GEMMs and dilated convs
with a phase-decomposed backward (kernels.py), never runs the `none` op (its output is zero),
and skips candidates whose weight is exactly zero when no gradient is wanted for the weights
(one-hot paths); `batched` is `fast` with each candidate op run once for all the edges leaving
a state, as grouped kernels (batched.py: fewer, larger kernels for a launch-bound GPU). All
compute the same function on the same state_dict.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.errors import ConfigError
from archsearch.spaces.darts.batched import edge_group
from archsearch.spaces.darts.genotype import edge_sources
from archsearch.spaces.darts.kernels import shared_bn
from archsearch.spaces.darts.ops import DilConv, FactorizedReduce, PoolBN, ReLUConvBN, Zero, create_op


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Output channel c*groups + g takes input channel g*(C/groups) + c."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def add_all(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """Sum of a non-empty sequence without sum()'s extra pass for 0 + first."""
    it = iter(tensors)
    total = next(it)
    for t in it:
        total = total + t
    return total


class MixedEdge(nn.Module):
    """Weighted sum of candidate ops; with K > 1 only the first C/K channels go through them.

    PC-DARTS: the other channels bypass the ops (max-pooled on stride-2 edges) and a channel
    shuffle makes the next edge see a different subset.
    """

    def __init__(self, op_names: Sequence[str], channels: int, stride: int, partial: int = 1):
        super().__init__()
        if channels % partial:
            raise ValueError(f"partial channels K={partial} must divide C={channels}")
        self.partial = partial
        self.stride = stride
        self.ops = nn.ModuleList(
            create_op(n, channels // partial, stride, affine=False, search=True) for n in op_names
        )
        self.op_names = list(op_names)
        self.takes_relu = [hasattr(op, "from_relu") for op in self.ops]

    def forward(self, x: torch.Tensor, w: torch.Tensor, active: Optional[list[int]] = None,
                xr: Optional[torch.Tensor] = None, shared: Optional[dict[str, torch.Tensor]] = None):
        """Fast path only: `xr` is relu of the channels the ops see, shared by the ops that start
        with a ReLU (which also fold their weight into their last BN); `shared` maps op names to
        outputs already computed for this input (parameter-free ops)."""
        k = self.partial
        xa = x[:, : x.shape[1] // k] if k > 1 else x
        idx = range(len(self.ops)) if active is None else active
        if active is None:  # the papers' formulation
            y = sum(w[i] * op(xa) for i, op in enumerate(self.ops))
        elif len(idx):
            y = add_all(self._term(i, w[i], xa, xr, shared) for i in idx)
        else:  # every weight is zero: the edge contributes zeros (plus the bypass)
            y = xa[:, :, :: self.stride, :: self.stride].mul(0.0)
        return self.bypass(x, y)

    def bypass(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The edge's output given y, the ops' weighted sum on the first C/K channels of x."""
        k = self.partial
        if k == 1:
            return y
        xb = x[:, x.shape[1] // k :]
        if self.stride == 2:
            xb = F.max_pool2d(xb, 2, 2, ceil_mode=True)  # odd sides: ceil(n/2), as the strided ops
        return channel_shuffle(torch.cat([y, xb], dim=1), k)

    def _term(self, i, wi, xa, xr, shared):
        if shared is not None and self.op_names[i] in shared:
            return wi * shared[self.op_names[i]]
        if xr is not None and self.takes_relu[i]:
            return self.ops[i].from_relu(xr, wi)
        return wi * self.ops[i](xa)


class SearchCell(nn.Module):
    batched = False  # set by the supernet: run the edges leaving each state as one group (batched.py)

    def __init__(self, op_names, nodes, c_pp, c_p, c, reduction, reduction_prev, partial):
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        self.preprocess0 = (
            FactorizedReduce(c_pp, c, affine=False) if reduction_prev
            else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False)
        )
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        sources = edge_sources(nodes)
        self.edges = nn.ModuleList(
            MixedEdge(op_names[e], c, 2 if reduction and src < 2 else 1, partial)
            for e, (_, src) in enumerate(sources)
        )
        self.edges_from = [[e for e, (_, src) in enumerate(sources) if src == j] for j in range(2 + nodes)]

    def forward(self, s0, s1, w, edge_w=None, active=None):
        """`active` (fast path) lists the ops to run per edge; relu of each state and its pooled
        outputs are then computed once and shared by every edge that reads the state."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        relus: dict[int, torch.Tensor] = {}
        pools: dict[int, dict[str, torch.Tensor]] = {}
        groups: dict[int, dict[int, torch.Tensor]] = {}  # batched: per state, each outgoing edge's op sum
        c_ops = states[0].shape[1] // self.edges[0].partial
        e = 0
        for i in range(self.nodes):
            terms = []
            for j in range(2 + i):
                if active is None:
                    out = self.edges[e](states[j], w[e])
                else:
                    if j not in relus:
                        relus[j] = F.relu(states[j][:, :c_ops])
                        pools[j] = self._shared_pools(j, states[j][:, :c_ops], active)
                        if self.batched:
                            groups[j] = dict(zip(self.edges_from[j], edge_group(
                                self.edges, self.edges_from[j], states[j][:, :c_ops], relus[j], pools[j],
                                w, active)))
                    if self.batched:
                        out = self.edges[e].bypass(states[j], groups[j][e])
                    else:
                        out = self.edges[e](states[j], w[e], active[e], relus[j], pools[j])
                terms.append(out if edge_w is None else edge_w[e] * out)
                e += 1
            states.append(sum(terms) if active is None else add_all(terms))
        return torch.cat(states[2:], dim=1)

    def _shared_pools(self, j: int, x: torch.Tensor, active) -> dict[str, torch.Tensor]:
        """Per pool op name, pool + BN of state j computed once for every edge running it."""
        groups: dict[str, list[PoolBN]] = {}
        for e in self.edges_from[j]:
            edge = self.edges[e]
            for i in active[e]:
                if isinstance(edge.ops[i], PoolBN):
                    groups.setdefault(edge.op_names[i], []).append(edge.ops[i])
        out = {}
        for name, ops in groups.items():
            y = shared_bn([op[1] for op in ops], ops[0][0](x))
            if y is not None:
                out[name] = y
        return out


# supernet formulations, all computing the same function (module docstring)
IMPLS = ("fast", "reference", "batched")


def cifar_stem(in_channels: int, c: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))


class ImageNetStem(nn.Module):
    """Three stride-2 convs (224 -> 28); s0 is taken after the second, s1 after the third."""

    def __init__(self, in_channels: int, c: int):
        super().__init__()
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, c // 2, 3, 2, 1, bias=False), nn.BatchNorm2d(c // 2),
            nn.ReLU(inplace=False),
            nn.Conv2d(c // 2, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=False), nn.Conv2d(c, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c)
        )

    def forward(self, x):
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


def check_cells(layers: int, reductions: int, where: str) -> None:
    """A network needs a normal cell besides its reduction cells (the genotype's normal cell)."""
    if len(reduction_layers(layers, reductions)) >= layers:
        raise ConfigError(f"{where}.layers={layers} leaves no normal cell beside {reductions} reduction cell(s); "
                          f"use at least {reductions + 1} cells")


def reduction_layers(layers: int, reductions: int = 2) -> tuple[int, ...]:
    """Cells that halve the resolution: at 1/3 and 2/3 of the depth, or with one reduction only
    the first (UnNAS segmentation: the second becomes a normal cell, output stride 16)."""
    if reductions not in (1, 2):
        raise ConfigError(f"reductions must be 1 or 2, got {reductions}")
    return tuple(sorted({layers // 3, 2 * layers // 3}))[:reductions]


class DartsSupernet(nn.Module):
    """Stem, `layers` search cells (reductions at 1/3 and 2/3 of the depth, or 1/3 only), objective head."""

    def __init__(
        self,
        op_names: dict[str, Sequence[Sequence[str]]],
        in_channels: int,
        head: Callable[[int], nn.Module],
        init_channels: int = 16,
        layers: int = 8,
        nodes: int = 4,
        stem_multiplier: int = 3,
        imagenet_stem: bool = False,
        partial: int = 1,
        impl: str = "fast",
        reductions: int = 2,
    ):
        super().__init__()
        c_curr = stem_multiplier * init_channels
        self.imagenet_stem = imagenet_stem
        self.stem = ImageNetStem(in_channels, c_curr) if imagenet_stem else cifar_stem(in_channels, c_curr)
        c_pp, c_p, c = c_curr, c_curr, init_channels
        reduction_prev = imagenet_stem
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in reduction_layers(layers, reductions)
            if reduction:
                c *= 2
            kind = "reduce" if reduction else "normal"
            self.cells.append(
                SearchCell(op_names[kind], nodes, c_pp, c_p, c, reduction, reduction_prev, partial)
            )
            reduction_prev = reduction
            c_pp, c_p = c_p, nodes * c
        self.out_channels = c_p
        self.head = head(c_p)
        # per cell type and edge, the candidates that are not the all-zero `none` op
        self._nonzero_ops = {
            ("reduce" if cell.reduction else "normal"): [
                [i for i, op in enumerate(e.ops) if not isinstance(op, Zero)] for e in cell.edges
            ]
            for cell in self.cells
        }
        self.impl = impl

    @property
    def impl(self) -> str:
        return self._impl

    @impl.setter
    def impl(self, value: str) -> None:
        if value not in IMPLS:
            raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {value!r}")
        self._impl = value
        for m in self.modules():
            if isinstance(m, DilConv):
                m.fast = value != "reference"
            elif isinstance(m, SearchCell):
                m.batched = value == "batched"

    def features(self, x: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        active = self._active(weights)
        if self.impl != "reference":  # depthwise convs are several times faster channels-last on CPU
            x = x.contiguous(memory_format=torch.channels_last)
        s0, s1 = self.stem(x) if self.imagenet_stem else (self.stem(x),) * 2
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            out = cell(s0, s1, weights[kind], weights.get(kind + "_edges"), active[kind])
            s0, s1 = s1, out
        return s1

    def forward(self, x: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.features(x, weights))

    def _active(self, weights) -> dict[str, Optional[list[list[int]]]]:
        """Per edge, the ops worth running; None means all of them.

        The `none` op's output is exactly zero, so it adds nothing to an edge and its weight's
        gradient <0, grad> is zero: the fast path never runs it. Other zero-weight ops are
        skipped only when no gradient is wanted (their weight's gradient <op(x), grad> is not
        zero).
        """
        if self.impl == "reference":
            return {"normal": None, "reduce": None}
        out = {}
        for kind in ("normal", "reduce"):
            live = self._nonzero_ops[kind]
            w = weights[kind]
            if not w.requires_grad:
                nz = (w != 0).tolist()  # one host sync per cell type and forward
                live = [[i for i in row if nz[e][i]] for e, row in enumerate(live)]
            out[kind] = live
        return out
