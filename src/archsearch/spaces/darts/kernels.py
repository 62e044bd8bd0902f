"""Building blocks of the fast supernet path; each computes exactly what the plain module does.

* `dilated_depthwise`: a dilation-2 depthwise conv whose backward avoids oneDNN's slow dilated
  kernels (forward and input gradient stay dilated convs, which are fast; the weight gradient
  is an undilated one over the four pixel phases stacked on the batch axis).
* `pointwise`: a 1x1 conv as a GEMM on the channels-last layout.
* `scaled_bn`: w * BN(x) as one batch norm whose (otherwise absent) gain is w, so the weighted
  sum of a mixed edge costs no extra pass over the activations.
* `shared_bn`: several affine-free BNs that see the same input (the pools of every edge leaving
  one state) normalise it once; each module's running statistics are still updated.
* `autocast_inputs`: the custom backwards run outside autocast, so their saved tensors are cast
  to autocast's dtype in the forward.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.graph import get_gradient_edge

from archsearch import collectives


def to_phases(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (4N, C, H/2, W/2), channels-last: pixel phase (a, b) becomes batch block
    2a + b, so that a dilation-2 conv on x is an undilated conv on the result."""
    n, c, h, w = x.shape
    y = x.permute(0, 2, 3, 1).reshape(n, h // 2, 2, w // 2, 2, c).permute(2, 4, 0, 1, 3, 5)
    return y.reshape(4 * n, h // 2, w // 2, c).permute(0, 3, 1, 2)


def _engine_wants(t: torch.Tensor) -> bool:
    """Inside a backward: whether the gradient of non-leaf `t` is used by this backward call
    (autograd.grad on the architecture weights alone does not want the network weights')."""
    try:
        return torch._C._will_engine_execute_node(get_gradient_edge(t).node)
    except (RuntimeError, AttributeError):  # not determinable: compute it
        return True


def autocast_inputs(x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x and weight in autocast's dtype when it is on: a custom Function's backward runs outside
    autocast, so it must find its saved tensors (and the incoming gradient) in one dtype."""
    dev = x.device.type
    if torch.is_autocast_enabled(dev):
        dt = torch.get_autocast_dtype(dev)
        return x.to(dt), weight.to(dt)
    return x, weight


class _DilatedDepthwise(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, pad: int):
        xc, wc = autocast_inputs(x, weight)
        ctx.save_for_backward(xc, wc, weight)
        ctx.pad = pad
        return F.conv2d(xc, wc, None, 1, pad, 2, wc.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, weight, weight_in = ctx.saved_tensors
        pad, c = ctx.pad, weight.shape[0]
        grad = grad.to(x.dtype)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:  # transposed "same" conv = correlation with the flipped kernel
            grad_x = F.conv2d(grad, weight.flip((2, 3)), None, 1, pad, 2, c)
        if ctx.needs_input_grad[1] and _engine_wants(weight_in):
            grad_w = depthwise_weight_grad(to_phases(grad), to_phases(x), weight, pad // 2).to(weight_in.dtype)
        return grad_x, grad_w, None


def _dw_weight_grad(grad, x, weight, pad: int) -> torch.Tensor:
    c = weight.shape[0]
    return torch.ops.aten.convolution_backward(
        grad, x, weight, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], c, [False, True, False]
    )[1]


def depthwise_weight_grad(grad, x, weight, pad: int) -> torch.Tensor:
    """Weight gradient of a stride-1 "same" depthwise conv.

    oneDNN has a fast depthwise weight-gradient kernel only for 3x3; on maps of at most 4x4 the
    generic one is so slow that tiling a larger kernel with 3x3 windows of the padded input
    (each an unpadded 3x3 weight gradient) is faster.
    """
    k = weight.shape[-1]
    h, w = x.shape[-2:]
    if k <= 3 or h * w > 16:
        return _dw_weight_grad(grad, x, weight, pad)
    xp = F.pad(x, (pad, pad, pad, pad))
    out = torch.empty_like(weight)
    w3 = weight[:, :, :3, :3]
    starts = sorted(set(range(0, k - 2, 3)) | {k - 3})
    for a in starts:
        for b in starts:
            win = xp[:, :, a: a + h + 2, b: b + w + 2].contiguous(memory_format=torch.channels_last)
            out[:, :, a: a + 3, b: b + 3] = _dw_weight_grad(grad, win, w3, 0)
    return out


def dilated_depthwise(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """`conv` (depthwise, dilation 2, "same" padding) applied to x with even height and width."""
    return dilated_depthwise_weight(x, conv.weight, conv.stride[0], conv.padding[0])


def dilated_depthwise_weight(x: torch.Tensor, weight: torch.Tensor, stride: int, pad: int) -> torch.Tensor:
    """A depthwise dilation-2 "same" conv of x (even height and width) with `weight` (C, 1, k, k).

    With stride 2 only pixel phase (0, 0) is read, so it is an undilated conv on x[::2, ::2].
    """
    if stride == 2:
        return F.conv2d(x[:, :, ::2, ::2], weight, None, 1, pad // 2, 1, weight.shape[0])
    if weight.requires_grad and torch.is_grad_enabled():
        weight = weight.view_as(weight)  # a non-leaf, so that backward can ask whether its gradient is wanted
    return _DilatedDepthwise.apply(x, weight, pad)


def pointwise(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A bias-free 1x1 conv as a matrix product over the channels of a channels-last map:
    oneDNN's 1x1 backward is several times slower than the two GEMMs it amounts to."""
    w = conv.weight.view(conv.out_channels, conv.in_channels)
    return F.linear(x.permute(0, 2, 3, 1), w).permute(0, 3, 1, 2)


def _momentum(bn: nn.BatchNorm2d) -> float:
    """The factor nn.BatchNorm2d uses for its running averages (after counting this batch)."""
    bn.num_batches_tracked.add_(1)
    return 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum


def _batch_stats(bn: nn.BatchNorm2d) -> bool:
    return bn.training or bn.running_mean is None


def scaled_bn(bn: nn.BatchNorm2d, x: torch.Tensor, scale: Optional[torch.Tensor]) -> torch.Tensor:
    """scale * bn(x) for an affine-free `bn`, with scale folded into the normalisation."""
    if scale is None:
        return bn(x)
    if bn.affine:
        return scale * bn(x)
    m = 0.0
    if bn.training and bn.track_running_stats:
        m = _momentum(bn)
    # materialised: the channels-last CPU BN backward misreads a stride-0 (expanded) weight
    # (x's dtype: a 0-dim weight times a tensor takes the tensor's dtype; under autocast, where x
    # may be bfloat16, the statistics' dtype, which mixed-precision batch norm wants)
    dtype = x.dtype if bn.running_mean is None else bn.running_mean.dtype
    gain = scale.to(dtype).expand(x.shape[1]).contiguous()
    if collectives.is_global(bn):  # under torchrun with sync_bn: the global batch's statistics
        return collectives.global_batch_norm(x, bn.running_mean, bn.running_var, gain, None, m, bn.eps)
    return F.batch_norm(x, bn.running_mean, bn.running_var, gain, None, _batch_stats(bn), m, bn.eps)


def shared_bn(bns: Sequence[nn.BatchNorm2d], x: torch.Tensor) -> Optional[torch.Tensor]:
    """bn(x), identical for every bn in `bns` (affine-free, training mode); each one's running
    statistics are updated as if it had run. None when the modules would not agree (eval mode)."""
    if any(collectives.is_global(bn) for bn in bns) or \
            not all(bn.training and not bn.affine and bn.track_running_stats for bn in bns):
        return None  # (a global BN normalises over the global batch itself)
    eps = bns[0].eps
    n = x.numel() // x.shape[1]
    if n < 2 or any(bn.eps != eps for bn in bns):  # n < 2: let each module raise as it would
        return None
    out, mean, invstd = torch.native_batch_norm(x, None, None, None, None, True, 0.0, eps)
    with torch.no_grad():
        var = (invstd.pow(-2) - eps) * (n / max(n - 1, 1))  # unbiased, as BatchNorm2d stores
        # (under autocast x, hence the moments, may be bfloat16; the statistics keep their dtype)
        mean, var = mean.to(bns[0].running_mean.dtype), var.to(bns[0].running_var.dtype)
        m = bns[0].momentum
        if m is None or any(bn.momentum != m for bn in bns):
            for bn in bns:
                m = _momentum(bn)
                bn.running_mean.lerp_(mean, m)
                bn.running_var.lerp_(var, m)
        else:  # one multi-tensor kernel per statistic (fewer launches on a GPU)
            torch._foreach_add_([bn.num_batches_tracked for bn in bns], 1)
            torch._foreach_lerp_([bn.running_mean for bn in bns], [mean] * len(bns), m)
            torch._foreach_lerp_([bn.running_var for bn in bns], [var] * len(bns), m)
    return out
