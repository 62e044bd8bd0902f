"""The unified supernet (docs/methods/sgnas.md §2.2): 19 unified blocks, each the sum of S expansion-1 MBConvs.

A unified block expands C_in -> S*C_in (shared 1x1 + BN + ReLU6), gives slice b of C_in channels
to sub-block b, which mixes its depthwise candidates with the architecture weights (skip = zeros),
concatenates, projects S*C_in -> C_out (shared 1x1, no BN inside), applies the shadow BN picked by
the number of skipped sub-blocks, and adds the residual. Candidates whose weight is at or below
the prune threshold are not computed; channels past the last active sub-block are not computed
either (their contribution is exactly zero), which makes forced-sampling paths cheap.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from archsearch import collectives
from archsearch.spaces.mobile.layout import LayerSpec, Layout


def init_weights(module: nn.Module) -> None:
    """Fan-out He normal convs, unit BN, N(0, 0.01) linear (docs/methods/sgnas.md §2.6)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def conv_bn_act(c_in: int, c_out: int, k: int, stride: int, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


def bn_slice(bn: nn.BatchNorm2d, x: torch.Tensor, n: int) -> torch.Tensor:
    """BN over the first n channels only; the running statistics of those channels update in place."""
    if n == bn.num_features:
        return bn(x)
    momentum = bn.momentum if bn.training else 0.0
    if collectives.is_global(bn):  # under torchrun with sync_bn: the global batch's statistics
        return collectives.global_batch_norm(x, bn.running_mean[:n], bn.running_var[:n], bn.weight[:n],
                                             bn.bias[:n], momentum, bn.eps)
    return F.batch_norm(x, bn.running_mean[:n], bn.running_var[:n], bn.weight[:n], bn.bias[:n],
                        bn.training, momentum, bn.eps)


class UnifiedBlock(nn.Module):
    def __init__(self, spec: LayerSpec, sub_blocks: int, kernels: tuple[int, ...], threshold: float):
        super().__init__()
        self.spec, self.s, self.k, self.threshold = spec, sub_blocks, len(kernels), threshold
        c, mid = spec.c_in, sub_blocks * spec.c_in
        self.expand = nn.Conv2d(c, mid, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(mid)
        self.candidates = nn.ModuleList(
            nn.ModuleList(conv_bn_act(c, c, k, spec.stride, groups=c) for k in kernels) for _ in range(sub_blocks)
        )
        self.project = nn.Conv2d(mid, spec.c_out, 1, bias=False)
        self.shadow_bn = nn.ModuleList(nn.BatchNorm2d(spec.c_out) for _ in range(sub_blocks))  # by skip count

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """w: (S, K+1) weights of this layer's sub-blocks (kernels, then skip)."""
        values = w.tolist()
        keep = [[v > self.threshold for v in row[: self.k]] for row in values]
        active = [any(row) for row in keep]
        fixed = not w.requires_grad  # a fixed path: weight-1 candidates need no multiplication
        n = max((b + 1 for b in range(self.s) if active[b]), default=0)
        skipped = round(sum(row[self.k] for row in values))
        if n == 0:
            out = x.new_zeros(x.shape[0], self.spec.c_out, self.spec.h_out, self.spec.h_out)
        else:
            c = self.spec.c_in
            h = F.conv2d(x, self.expand.weight[: n * c])
            h = F.relu6(bn_slice(self.expand_bn, h, n * c))
            parts = []
            for b in range(n):
                piece = h[:, b * c:(b + 1) * c]
                terms = [op(piece) if fixed and values[b][j] == 1.0 else w[b, j] * op(piece)
                         for j, op in enumerate(self.candidates[b]) if keep[b][j]]
                parts.append(self._zeros(piece) if not terms else terms[0] if len(terms) == 1
                             else torch.stack(terms).sum(dim=0))
            out = F.conv2d(torch.cat(parts, dim=1), self.project.weight[:, : n * c])
            if skipped < self.s:
                out = self.shadow_bn[skipped](out)
        return out + x if self.spec.residual else out

    def _zeros(self, piece: torch.Tensor) -> torch.Tensor:
        ho = self.spec.h_out
        return piece.new_zeros(piece.shape[0], piece.shape[1], ho, ho)


class UnifiedSupernet(nn.Module):
    """supernet(x, {"arch": (L, S, K+1)}) -> the objective head's output."""

    def __init__(self, layout: Layout, head: Callable[[int], nn.Module], threshold: float = 0.01):
        super().__init__()
        self.layout = layout
        c0 = layout.stem_channels
        self.stem = conv_bn_act(layout.in_channels, c0, 3, layout.stem_stride)
        self.first = nn.Sequential(conv_bn_act(c0, c0, 3, 1, groups=c0),
                                   conv_bn_act(c0, layout.first_channels, 1, 1, act=False))
        self.blocks = nn.ModuleList(UnifiedBlock(s, layout.sub_blocks, layout.kernels, threshold)
                                    for s in layout.layers)
        c_last = layout.layers[-1].c_out if layout.layers else layout.first_channels
        self.head_conv = conv_bn_act(c_last, layout.head_channels, 1, 1)
        self.head = head(layout.head_channels)
        init_weights(self)

    def forward(self, x: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        w = weights["arch"]
        x = self.first(self.stem(x))
        for i, block in enumerate(self.blocks):
            x = block(x, w[i])
        return self.head(self.head_conv(x))
