"""FLOPs and parameters: the differentiable lookup table and the stand-alone network's counts.

The lookup table (docs/methods/sgnas.md §5.2) prices soft architecture weights p of shape (L, S, K+1):

  F(p) = BASE + sum_l [ sum_{b, k} 1[p > thr] p DW[l, k] + 1[a_l > 1] a_l/S PW1[l] + a_l/S PW2[l] ]

with a_l = S - sum_b p[l, b, skip] the expected number of active sub-blocks. On one-hot weights it
is the exact conv mult-add count of the stand-alone no-SE network (its e = 1 blocks have no
expansion conv, hence the gate). The gate is decided on a_l > 1 with a margin rather than the
code's float test w < 5/6, which is fragile at exactly one active sub-block.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from archsearch.spaces.mobile.arch import MobileArch
from archsearch.spaces.mobile.layout import Layout

M = 1e6


class FlopsTable(nn.Module):
    """Per-layer depthwise and pointwise costs in MFLOPs, as buffers that follow the device."""

    def __init__(self, layout: Layout, threshold: float = 0.01):
        super().__init__()
        self.layout = layout
        self.threshold = threshold
        n, k = len(layout.layers), len(layout.kernels)
        dw = torch.zeros(n, k + 1, dtype=torch.float64)  # the skip column stays 0
        for i in range(n):
            for j, kernel in enumerate(layout.kernels):
                dw[i, j] = layout.dw_macs(i, kernel) / M
        self.base = layout.base_macs() / M
        self.register_buffer("dw", dw, persistent=False)
        self.register_buffer("pw1", torch.tensor([layout.pw1_macs(i) / M for i in range(n)], dtype=torch.float64),
                             persistent=False)
        self.register_buffer("pw2", torch.tensor([layout.pw2_macs(i) / M for i in range(n)], dtype=torch.float64),
                             persistent=False)

    def soft(self, p: torch.Tensor) -> torch.Tensor:
        """Expected MFLOPs of weights p (L, S, K+1); differentiable except at the two gates."""
        s = self.layout.sub_blocks
        dw = self.dw.to(p.dtype)
        kept = p * (p > self.threshold)
        depthwise = (kept * dw.unsqueeze(1)).sum()
        active = s - p[..., -1].sum(dim=1)  # (L,)
        gate = (active > 1 + 1e-6).to(p.dtype)
        pointwise = (gate * active / s * self.pw1.to(p.dtype) + active / s * self.pw2.to(p.dtype)).sum()
        return self.base + depthwise + pointwise

    def discrete(self, arch: MobileArch) -> float:
        """Exact MFLOPs of a discrete architecture, from the same table (no tensors involved)."""
        lay = self.layout
        total = lay.base_macs()
        for i, (e, ks) in enumerate(zip(arch.expansions, arch.kernels)):
            total += sum(lay.dw_macs(i, k) for k in ks)
            total += (lay.pw1_macs(i) if e > 1 else 0) * e // lay.sub_blocks + lay.pw2_macs(i) * e // lay.sub_blocks
        return total / M


@dataclass
class NetworkCost:
    params: int
    conv_macs: int  # the FLOPs SGNAS reports: conv layers only
    fc_macs: int

    def as_dict(self) -> dict:
        return {"params_M": self.params / M, "flops_M": self.conv_macs / M, "fc_mult_adds_M": self.fc_macs / M}


def se_width(mid: int) -> int:
    return max(1, mid // 4)


def block_cost(c_in: int, c_out: int, kernels: list[int], h_in: int, h_out: int, se: bool) -> tuple[int, int]:
    """(params, conv mult-adds) of an MBConv with one C_in-channel depthwise group per kernel."""
    e = len(kernels)
    mid = e * c_in
    params = macs = 0
    if e > 1:
        params += c_in * mid + 2 * mid
        macs += h_in * h_in * c_in * mid
    params += sum(k * k for k in kernels) * c_in + 2 * mid
    macs += h_out * h_out * sum(k * k for k in kernels) * c_in
    if se:
        r = se_width(mid)
        params += mid * r + r + r * mid + mid
        macs += 2 * mid * r
    params += mid * c_out + 2 * c_out
    macs += h_out * h_out * mid * c_out
    return params, macs


def network_cost(layout: Layout, arch: MobileArch, num_classes: int, se: bool = False) -> NetworkCost:
    """Params and mult-adds of the stand-alone network (network.py), counted from the formulas."""
    h = layout.stem_size
    c0 = layout.stem_channels
    params = layout.in_channels * c0 * 9 + 2 * c0
    macs = h * h * c0 * 9 * layout.in_channels
    p, m = block_cost(c0, layout.first_channels, [3], h, h, se)
    params, macs = params + p, macs + m
    for spec, ks in zip(layout.layers, arch.kernels):
        p, m = block_cost(spec.c_in, spec.c_out, ks, spec.h_in, spec.h_out, se)
        params, macs = params + p, macs + m
    c_last = layout.layers[-1].c_out if layout.layers else layout.first_channels
    params += c_last * layout.head_channels + 2 * layout.head_channels
    macs += layout.head_size ** 2 * c_last * layout.head_channels
    params += layout.head_channels * num_classes + num_classes
    return NetworkCost(params, macs, layout.head_channels * num_classes)
