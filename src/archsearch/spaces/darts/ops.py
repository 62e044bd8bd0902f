"""Candidate operations of the DARTS space (docs/methods/darts.md §1.1) and the RobustDARTS noise op.

Every op maps (N, C, H, W) to (N, C, H/s, W/s). `affine=False` in search keeps the outputs of
all candidates on one scale so that the architecture weights, not a learned BN gain, express
an op's importance. Activations are never in-place: one tensor feeds every candidate of an edge.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.registry import Registry
from archsearch.spaces.darts.kernels import dilated_depthwise, pointwise, scaled_bn

# factory(C, stride, affine, search) -> nn.Module
OPS: Registry[nn.Module] = Registry("operation")


class Zero(nn.Module):
    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Noise(nn.Module):
    """Fresh N(0, 1) samples of the output shape: parameter-free, input-independent, harmful."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return torch.randn_like(x[:, :, :: self.stride, :: self.stride])


class ReLUConvBN(nn.Sequential):
    """ReLU, conv, BN. The 1x1 cell preprocessing stays a oneDNN conv in the fast path: as a GEMM
    (kernels.pointwise) it crashed the process with heap corruption inside torch 2.14's CPU
    backward on PC-DARTS supernets with C/K = 2 (cause not isolated; tests/test_distributed.py)."""

    def __init__(self, c_in, c_out, kernel, stride, padding, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """Dilated depthwise-separable conv, applied once.

    `fast` (set by the fast supernet) computes dilation-2 convs on even maps through
    `kernels.dilated_depthwise`; `from_relu` lets a caller that already holds relu(x) share it
    between ops, and folds an architecture weight into the final BN. The plain forward is the
    papers' formulation.
    """

    fast = False

    def __init__(self, c_in, c_out, kernel, stride, padding, dilation, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x):
        return self.from_relu(self[0](x)) if self.fast else super().forward(x)

    def from_relu(self, xr, scale=None):
        """scale * op(x) given xr = relu(x)."""
        _, dw, pw, bn = self
        even = xr.shape[-1] % 2 == 0 and xr.shape[-2] % 2 == 0
        y = dilated_depthwise(xr, dw) if self.fast and dw.dilation[0] == 2 and even else dw(xr)
        return scaled_bn(bn, pointwise(y, pw) if self.fast else pw(y), scale)


class SepConv(nn.Sequential):
    """Depthwise-separable conv applied twice; only the first carries the stride."""

    def __init__(self, c_in, c_out, kernel, stride, padding, affine=True):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )

    def from_relu(self, xr, scale=None):
        return self[1].from_relu(F.relu(self[0].from_relu(xr)), scale)


class FactorizedReduce(nn.Module):
    """Stride-2 1x1 convs on the input and on the input shifted by one pixel, concatenated.

    An odd side is first zero-padded by one at the bottom/right (as UnNAS does), so both halves
    have ceil(n/2) pixels and odd inputs (Cityscapes 769, 1025) work; even sides are unchanged.
    """

    def __init__(self, c_in, c_out, affine=True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        return self.from_relu(self.relu(x))

    def from_relu(self, xr, scale=None):
        h, w = xr.shape[-2:]
        if h % 2 or w % 2:
            xr = F.pad(xr, (0, w % 2, 0, h % 2))
        if xr.device.type == "cpu" and xr.shape[1] < 8:
            # oneDNN's channels-last 1x1 stride-2 convolution corrupts the heap for inputs of fewer
            # than 8 channels on some CPUs (torch 2.14.1, AMD EPYC: "double free or corruption");
            # such tiny edges (tests, PC-DARTS's C/K) take the NCHW kernel
            xr = xr.contiguous()
        return scaled_bn(self.bn, torch.cat([self.conv_1(xr), self.conv_2(xr[:, :, 1:, 1:])], dim=1), scale)


class Conv7x1x1x7(nn.Sequential):
    def __init__(self, c, stride, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(c, c, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


class PoolBN(nn.Sequential):
    """Pool then affine-free BN (search network). Parameter-free, so the fast supernet computes
    it once per cell state and shares it between the edges leaving that state."""


def _pool(pool: Callable[[], nn.Module]):
    def make(c, stride, affine, search):
        # The search network normalises pool outputs like every other candidate (see docstring).
        return PoolBN(pool(stride), nn.BatchNorm2d(c, affine=False)) if search else pool(stride)

    return make


OPS.register("none")(lambda c, s, affine, search: Zero(s))
OPS.register("noise")(lambda c, s, affine, search: Noise(s))
OPS.register("max_pool_3x3")(_pool(lambda s: nn.MaxPool2d(3, s, padding=1)))
OPS.register("avg_pool_3x3")(_pool(lambda s: nn.AvgPool2d(3, s, padding=1, count_include_pad=False)))
OPS.register("skip_connect")(
    lambda c, s, affine, search: nn.Identity() if s == 1 else FactorizedReduce(c, c, affine)
)
OPS.register("sep_conv_3x3")(lambda c, s, affine, search: SepConv(c, c, 3, s, 1, affine))
OPS.register("sep_conv_5x5")(lambda c, s, affine, search: SepConv(c, c, 5, s, 2, affine))
OPS.register("sep_conv_7x7")(lambda c, s, affine, search: SepConv(c, c, 7, s, 3, affine))
OPS.register("dil_conv_3x3")(lambda c, s, affine, search: DilConv(c, c, 3, s, 2, 2, affine))
OPS.register("dil_conv_5x5")(lambda c, s, affine, search: DilConv(c, c, 5, s, 4, 2, affine))
OPS.register("conv_7x1_1x7")(lambda c, s, affine, search: Conv7x1x1x7(c, s, affine))

# Column order of the architecture weights in the full DARTS space.
DARTS_OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


def create_op(name: str, channels: int, stride: int, affine: bool, search: bool) -> nn.Module:
    return OPS.create(name, channels, stride, affine, search)
