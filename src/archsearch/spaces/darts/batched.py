"""The `batched` supernet path: the ops of all edges leaving one cell state as grouped kernels.

Why: at C=16 a GPU spends its time launching small kernels rather than running them, and the
edges leaving one state (4 from each cell input, 3 from node 0, 2 from node 1) all read the same
input. So each candidate op runs once for all of them: depthwise convs with the edges' weights
concatenated over the input repeated once per edge, 1x1 convs as one grouped conv (one conv with
concatenated weights where they read the shared input), one batch norm over the concatenated
channels. Parameter-free outputs (pools, identity) are computed once and weighted for every edge
by one broadcast multiply-add.

Every edge keeps its own modules, so the state_dict is the reference's: weights are concatenated
per forward, and batch-norm running statistics are written back to each edge's module.

Layout of a group of s edges: (N, s*C, H, W) channels-last, edge-major (the p-th edge owns
channels p*C .. p*C+C-1), so an edge's output is a channel slice. Edges are visited state by
state, so RobustDARTS's `noise` op draws its samples in another order than the other paths.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from archsearch import collectives
from archsearch.spaces.darts.kernels import (
    _engine_wants,
    autocast_inputs,
    depthwise_weight_grad,
    scaled_bn,
    to_phases,
)
from archsearch.spaces.darts.ops import DilConv, FactorizedReduce, SepConv


def _cat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(list(tensors))


def repeat_channels(x: torch.Tensor, s: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, s*C, H, W) channels-last, copy p in channels p*C .. p*C+C-1."""
    if s == 1:
        return x
    return x.permute(0, 2, 3, 1).repeat(1, 1, 1, s).permute(0, 3, 1, 2)


def _groupable(bns: Sequence[nn.BatchNorm2d]) -> bool:
    """Whether one functional batch norm reproduces every module (same settings and momentum)."""
    b = bns[0]
    if b.affine or any(
        bn.affine or bn.eps != b.eps or bn.training != b.training or bn.momentum != b.momentum
        or bn.track_running_stats != b.track_running_stats or (bn.running_mean is None) != (b.running_mean is None)
        or collectives.is_global(bn) != collectives.is_global(b)
        for bn in bns
    ):
        return False
    if b.momentum is None and b.training and b.track_running_stats:  # cumulative average: counts must agree
        return len({int(bn.num_batches_tracked) for bn in bns}) == 1
    return True


def grouped_bn(bns: Sequence[nn.BatchNorm2d], x: torch.Tensor, gain: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Each affine-free `bns[p]` on channel block p of x, times `gain` (one value per channel)
    if given, as one batch norm; each module's running statistics are updated as if it had run."""
    c = x.shape[1] // len(bns)
    b = bns[0]
    if gain is not None:  # the statistics' dtype, so that autocast's mixed batch norm accepts it
        gain = gain.to(x.dtype if b.running_mean is None else b.running_mean.dtype)
    if not _groupable(bns):  # one module at a time, on its block
        return torch.cat([scaled_bn(bn, x[:, p * c: (p + 1) * c], None if gain is None else gain[p * c])
                          for p, bn in enumerate(bns)], 1)
    if b.running_mean is None or (b.training and not b.track_running_stats):
        return F.batch_norm(x, None, None, gain, None, True, 0.0, b.eps)
    mean, var = _cat([bn.running_mean for bn in bns]), _cat([bn.running_var for bn in bns])
    if not b.training:
        return F.batch_norm(x, mean, var, gain, None, False, 0.0, b.eps)
    torch._foreach_add_([bn.num_batches_tracked for bn in bns], 1)
    m = b.momentum if b.momentum is not None else 1.0 / float(b.num_batches_tracked)
    if collectives.is_global(b):
        y = collectives.global_batch_norm(x, mean, var, gain, None, m, b.eps)
    else:
        y = F.batch_norm(x, mean, var, gain, None, True, m, b.eps)
    if len(bns) > 1:  # the concatenations were updated in place: hand each module its block
        with torch.no_grad():
            torch._foreach_copy_([bn.running_mean for bn in bns], list(mean.split(c)))
            torch._foreach_copy_([bn.running_var for bn in bns], list(var.split(c)))
    return y


class _GroupedDepthwise(torch.autograd.Function):
    """Depthwise conv with weight block p (of `blocks`) on channel block p of x or, if `shared`, on
    x itself repeated once per block (the edges leaving one state read one input).

    Only x is kept for backward (a repeat is redone there), so grouping edges does not multiply
    the activation memory; the weight gradient is skipped when the engine does not want it (the
    architecture step's autograd.grad). On CPU a stride-1 backward avoids oneDNN's depthwise
    backward, which slows down several-fold on many channels (BENCHMARKS.md): the input gradient
    is a conv with the flipped kernel, the weight gradient one block (one edge) at a time."""

    @staticmethod
    def forward(ctx, x, weight, blocks: int, shared: bool, stride: int, pad: int, dilation: int):
        xc, wc = autocast_inputs(x, weight)
        ctx.save_for_backward(xc, wc, weight)
        ctx.conf = blocks, shared, stride, pad, dilation
        xs = repeat_channels(xc, blocks) if shared else xc
        return F.conv2d(xs, wc, None, stride, pad, dilation, wc.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, weight, weight_in = ctx.saved_tensors
        blocks, shared, stride, pad, dilation = ctx.conf
        grad = grad.to(x.dtype)
        want_x, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1] and _engine_wants(weight_in)
        g = weight.shape[0]
        if stride == 1 and x.device.type == "cpu":
            gx = F.conv2d(grad, weight.flip((2, 3)), None, 1, pad, dilation, g) if want_x else None
            c = g // blocks
            gw = torch.cat([_block_weight_grad(grad[:, p * c: (p + 1) * c], x if shared else x[:, p * c: (p + 1) * c],
                                               weight[p * c: (p + 1) * c], pad, dilation)
                            for p in range(blocks)]) if want_w else None
        else:
            gx, gw, _ = torch.ops.aten.convolution_backward(
                grad, repeat_channels(x, blocks) if shared else x, weight, None, [stride] * 2, [pad] * 2,
                [dilation] * 2, False, [0, 0], g, [want_x, want_w, False])
        if gx is not None and shared:  # the copies' gradients add up
            n, _, h, w = gx.shape
            gx = gx.permute(0, 2, 3, 1).reshape(n, h, w, blocks, -1).sum(3).permute(0, 3, 1, 2)
        return gx, None if gw is None else gw.to(weight_in.dtype), None, None, None, None, None


def _block_weight_grad(grad, x, weight, pad: int, dilation: int) -> torch.Tensor:
    """Weight gradient of one stride-1 "same" depthwise conv (CPU): dilation 2 on even maps as an
    undilated one over the pixel phases, as kernels.dilated_depthwise does."""
    if dilation == 1:
        return depthwise_weight_grad(grad, x, weight, pad)
    if dilation == 2 and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0:
        return depthwise_weight_grad(to_phases(grad), to_phases(x), weight, pad // 2)
    return torch.ops.aten.convolution_backward(grad, x, weight, None, [1, 1], [pad, pad], [dilation] * 2, False,
                                               [0, 0], weight.shape[0], [False, True, False])[1]


def _depthwise(x: torch.Tensor, convs: Sequence[nn.Conv2d], shared: bool) -> torch.Tensor:
    """Depthwise conv p on channel block p of x, or (shared) on x itself for every p."""
    w = _cat([conv.weight for conv in convs])
    k = convs[0]
    stride, pad, dil = k.stride[0], k.padding[0], k.dilation[0]
    if dil == 2 and stride == 2 and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0:
        x, stride, pad, dil = x[:, :, ::2, ::2], 1, pad // 2, 1  # only pixel phase (0, 0) is read
    if w.requires_grad and torch.is_grad_enabled():
        w = w.view_as(w)  # a non-leaf, so that backward can ask whether its gradient is wanted
    return _GroupedDepthwise.apply(x, w, len(convs), shared, stride, pad, dil)


def dil_conv_group(ops: Sequence[DilConv], x: torch.Tensor, gain: Optional[torch.Tensor],
                   shared: bool) -> torch.Tensor:
    """gain * op_p(input) for every op p, given x = relu(input): one input that all read
    (`shared`) or one channel block per op."""
    y = _depthwise(x, [op[1] for op in ops], shared)
    y = F.conv2d(y, _cat([op[2].weight for op in ops]), None, 1, 0, 1, len(ops))  # grouped 1x1
    return grouped_bn([op[3] for op in ops], y, gain)


def sep_conv_group(ops: Sequence[SepConv], xr: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    h = F.relu(dil_conv_group([op[0] for op in ops], xr, None, shared=True))
    return dil_conv_group([op[1] for op in ops], h, gain, shared=False)


def factorized_reduce_group(ops: Sequence[FactorizedReduce], xr: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """The stride-2 skip of every edge: the 1x1 convs read the shared input, so each half is one
    conv with the edges' weights concatenated; the halves are then interleaved per edge."""
    h, w = xr.shape[-2:]
    if h % 2 or w % 2:
        xr = F.pad(xr, (0, w % 2, 0, h % 2))
    y1 = F.conv2d(xr, _cat([op.conv_1.weight for op in ops]), None, 2)
    y2 = F.conv2d(xr[:, :, 1:, 1:], _cat([op.conv_2.weight for op in ops]), None, 2)
    n, c2, h2, w2 = y1.shape
    s = len(ops)
    halves = [y.permute(0, 2, 3, 1).reshape(n, h2, w2, s, 1, c2 // s) for y in (y1, y2)]
    y = torch.cat(halves, 4).reshape(n, h2, w2, 2 * c2).permute(0, 3, 1, 2)
    return grouped_bn([op.bn for op in ops], y, gain)


GROUPED: dict[type, Callable] = {
    SepConv: sep_conv_group,
    DilConv: lambda ops, xr, gain: dil_conv_group(ops, xr, gain, shared=True),
    FactorizedReduce: factorized_reduce_group,
}


@lru_cache(maxsize=4096)
def _index(flat: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Index tensors live on the weights' device once, not copied there every forward."""
    return torch.tensor(flat, dtype=torch.long, device=device)


def edge_group(edges: nn.ModuleList, ids: Sequence[int], xa: torch.Tensor, xr: torch.Tensor,
               shared: dict[str, torch.Tensor], w: torch.Tensor, active: Sequence[Sequence[int]]
               ) -> list[torch.Tensor]:
    """For each edge e in `ids` (all reading xa, xr = relu(xa)): sum of w[e, i] * op_i(xa) over its
    active ops. `shared` maps names of parameter-free ops to their output on xa (cell pools)."""
    s, c = len(ids), xa.shape[1]
    members: dict[str, list[tuple[int, int]]] = {}  # op name -> (position in ids, op index)
    for p, e in enumerate(ids):
        for i in active[e]:
            members.setdefault(edges[e].op_names[i], []).append((p, i))
    cells = [(ids[p], i) for mem in members.values() for p, i in mem]
    if not cells:
        return [xa[:, :, :: edges[e].stride, :: edges[e].stride].mul(0.0) for e in ids]
    # every weight the group uses, gathered once, and once more repeated per channel for the BN gains
    gains = w.reshape(-1).index_select(0, _index(tuple(e * w.shape[1] + i for e, i in cells), w.device))
    per_channel = gains.unsqueeze(1).expand(len(cells), c).reshape(-1)
    total = None  # (N, H, W, s*C): the ops every edge of the group runs
    extra: list[list[torch.Tensor]] = [[] for _ in ids]
    at = 0
    for name, mem in members.items():
        everyone = [p for p, _ in mem] == list(range(s))
        op = edges[ids[mem[0][0]]].ops[mem[0][1]]
        g = gains[at: at + len(mem)]
        if type(op) in GROUPED and len(mem) > 1:
            y = GROUPED[type(op)]([edges[ids[p]].ops[i] for p, i in mem], xr,
                                  per_channel[at * c: (at + len(mem)) * c])
            if everyone:
                y = y.permute(0, 2, 3, 1)
                total = y if total is None else total + y
            else:
                for q, (p, _) in enumerate(mem):
                    extra[p].append(y[:, q * c: (q + 1) * c])
        elif everyone and s > 1 and (name in shared or isinstance(op, nn.Identity)):
            src = (shared[name] if name in shared else xa).permute(0, 2, 3, 1).unsqueeze(3)
            g = g.to(src.dtype).view(s, 1)
            if total is None:
                total = (src * g).flatten(3)
            else:
                n, h, wd, _ = total.shape
                total = torch.addcmul(total.reshape(n, h, wd, s, c), src, g).flatten(3)
        else:
            for q, (p, i) in enumerate(mem):
                extra[p].append(edges[ids[p]]._term(i, g[q], xa, xr, shared))
        at += len(mem)
    blocks = [None] * s if total is None else [t.permute(0, 3, 1, 2) for t in total.split(c, dim=3)]
    outs = []
    for p, e in enumerate(ids):
        terms = [t for t in (blocks[p], *extra[p]) if t is not None]
        if not terms:  # every weight is zero: the edge contributes zeros
            st = edges[e].stride
            terms = [xa[:, :, ::st, ::st].mul(0.0)]
        out = terms[0]
        for t in terms[1:]:
            out = out + t
        outs.append(out)
    return outs
