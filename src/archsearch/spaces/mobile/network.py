"""The stand-alone network of a discrete architecture (sgnas.md 6.2), for retraining from scratch.

Each searchable layer becomes an MBConv whose expansion rate is its number of active sub-blocks
and whose depthwise stage is a mixed-kernel conv with one C_in-channel group per active
sub-block (kernel order kept). Expansion 1 has no expansion conv. SE (squeeze to mid/4, ReLU,
excite, h-sigmoid) and h-swish are switchable as the released ImageNet models use them; the
search-time network is ReLU6 without SE, which is what the lookup table prices.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.errors import ConfigError
from archsearch.registry import Registry
from archsearch.spaces.mobile.arch import MobileArch
from archsearch.spaces.mobile.cost import se_width
from archsearch.spaces.mobile.layout import Layout
from archsearch.spaces.mobile.supernet import init_weights

ACTIVATIONS: Registry[nn.Module] = Registry("activation")
ACTIVATIONS.register("relu6")(lambda: nn.ReLU6(inplace=True))
ACTIVATIONS.register("hswish")(lambda: nn.Hardswish(inplace=True))  # x * relu6(x + 3) / 6


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        r = se_width(channels)
        self.reduce = nn.Conv2d(channels, r, 1)
        self.expand = nn.Conv2d(r, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.hardsigmoid(self.expand(F.relu(self.reduce(s))))
        return x * s


class MixedDepthwise(nn.Module):
    """One depthwise conv per C-channel group, each with its own kernel (MixConv)."""

    def __init__(self, channels: int, kernels: list[int], stride: int):
        super().__init__()
        self.channels = channels
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, k, stride, k // 2, groups=channels, bias=False)
                                   for k in kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.convs) == 1:
            return self.convs[0](x)
        return torch.cat([conv(p) for conv, p in zip(self.convs, x.split(self.channels, dim=1))], dim=1)


class MBConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernels: list[int], stride: int, act: str, se: bool,
                 bn_momentum: float):
        super().__init__()
        if not kernels:
            raise ConfigError("an MBConv needs at least one active sub-block")
        mid = len(kernels) * c_in
        layers: list[nn.Module] = []
        if len(kernels) > 1:
            layers += [nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid, momentum=bn_momentum),
                       ACTIVATIONS.create(act)]
        layers += [MixedDepthwise(c_in, kernels, stride), nn.BatchNorm2d(mid, momentum=bn_momentum),
                   ACTIVATIONS.create(act)]
        if se:
            layers.append(SqueezeExcite(mid))
        layers += [nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out, momentum=bn_momentum)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.residual else out


class MobileNetwork(nn.Module):
    """stem -> fixed MBConv k3 e1 -> one MBConv per searchable layer -> 1x1 head -> pool -> dropout -> FC.

    `head` replaces pool + dropout + FC (e.g. an objective's head on the head_channels map).
    """

    def __init__(self, layout: Layout, arch: MobileArch, num_classes: int, se: bool = False, act: str = "relu6",
                 dropout: float = 0.2, bn_momentum: float = 0.1,
                 head: Callable[[int], nn.Module] | None = None):
        super().__init__()
        if len(arch.layers) != len(layout.layers):
            raise ConfigError(f"architecture has {len(arch.layers)} layers, the layout {len(layout.layers)}")
        ACTIVATIONS.get(act)
        c0 = layout.stem_channels

        def bn(c):
            return nn.BatchNorm2d(c, momentum=bn_momentum)

        self.stem = nn.Sequential(nn.Conv2d(layout.in_channels, c0, 3, layout.stem_stride, 1, bias=False), bn(c0),
                                  ACTIVATIONS.create(act))
        blocks = [MBConv(c0, layout.first_channels, [3], 1, act, se, bn_momentum)]
        blocks += [MBConv(s.c_in, s.c_out, ks, s.stride, act, se, bn_momentum)
                   for s, ks in zip(layout.layers, arch.kernels)]
        self.blocks = nn.Sequential(*blocks)
        c_last = layout.layers[-1].c_out if layout.layers else layout.first_channels
        self.head_conv = nn.Sequential(nn.Conv2d(c_last, layout.head_channels, 1, bias=False),
                                       bn(layout.head_channels), ACTIVATIONS.create(act))
        if head is None:
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                      nn.Linear(layout.head_channels, num_classes))
        else:
            self.head = head(layout.head_channels)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_conv(self.blocks(self.stem(x))))
