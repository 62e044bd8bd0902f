"""The stand-alone network of a discrete architecture (docs/methods/sgnas.md §6.2), for retraining from scratch.

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
                 bn_momentum: float, residual: bool = True):
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
        self.residual = residual and stride == 1 and c_in == c_out

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
        blocks = [MBConv(c0, layout.first_channels, [3], 1, act, se, bn_momentum, residual=False)]  # as the supernet
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


def _copy_bn(dst: nn.BatchNorm2d, srcs: list[tuple[nn.BatchNorm2d, slice]]) -> None:
    """dst's affine parameters and running statistics from channel slices of source BNs."""
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).data.copy_(torch.cat([getattr(bn, name).data[sl] for bn, sl in srcs]))


@torch.no_grad()
def inherit_from_supernet(net: MobileNetwork, supernet: nn.Module, arch: MobileArch) -> MobileNetwork:
    """Load the supernet's weights for `arch` into a ReLU6, no-SE stand-alone network.

    A unified block with e >= 2 active sub-blocks is an MBConv with expansion e: the expansion
    rows, BN channels, depthwise candidates and projection columns of the active sub-blocks, in
    sub-block order, and the shadow BN of its skip count. In eval mode both compute the same
    function (tested), so generated architectures can be scored with inherited weights.
    """
    if min(arch.expansions) < 2:
        raise ConfigError("weights can be inherited only when every layer has at least 2 active sub-blocks")
    lay = supernet.layout
    net.stem.load_state_dict(supernet.stem.state_dict())
    first = net.blocks[0].body
    first[0].convs[0].weight.copy_(supernet.first[0][0].weight)
    first[1].load_state_dict(supernet.first[0][1].state_dict())
    first[3].weight.copy_(supernet.first[1][0].weight)
    first[4].load_state_dict(supernet.first[1][1].state_dict())
    for block, mb, layer in zip(supernet.blocks, net.blocks[1:], arch.layers):
        c = block.spec.c_in
        active = [(b, lay.kernels.index(op)) for b, op in enumerate(layer) if op != 0]
        rows = [slice(b * c, (b + 1) * c) for b, _ in active]
        body = mb.body
        body[0].weight.copy_(torch.cat([block.expand.weight[r] for r in rows]))
        _copy_bn(body[1], [(block.expand_bn, r) for r in rows])
        for conv, (b, j) in zip(body[3].convs, active):
            conv.weight.copy_(block.candidates[b][j][0].weight)
        _copy_bn(body[4], [(block.candidates[b][j][1], slice(None)) for b, j in active])
        body[6].weight.copy_(torch.cat([block.project.weight[:, r] for r in rows], dim=1))
        _copy_bn(body[7], [(block.shadow_bn[lay.sub_blocks - len(active)], slice(None))])
    net.head_conv.load_state_dict(supernet.head_conv.state_dict())
    net.head.load_state_dict(supernet.head.state_dict())
    return net
