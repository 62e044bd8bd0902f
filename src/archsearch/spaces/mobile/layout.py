"""The macro-architecture of the unified MobileNet space and its analytic costs (docs/methods/sgnas.md §2.1, §5.2).

A `Layout` is the fixed skeleton for one input (channels, resolution): stem, the fixed first
MBConv, the searchable layers, the 1x1 head conv. FLOPs are conv multiply-accumulates only
(BN, activations, pooling, residual additions, SE products and the classifier excluded), in
millions, as the SGNAS code counts them.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import List

from archsearch.config import Choice, opt
from archsearch.errors import ConfigError

# Table 6 (ImageNet) and the CIFAR variant (stem and first unified block at stride 1).
LAYOUTS = {
    "imagenet": {"stem_channels": 32, "stem_stride": 2, "first_channels": 16, "head_channels": 1280,
                     "widths": [32, 40, 80, 96, 192, 320], "depths": [2, 4, 4, 4, 4, 1], "strides": [2, 2, 2, 1, 2, 1]},
    "cifar": {"stem_channels": 32, "stem_stride": 1, "first_channels": 16, "head_channels": 1280,
                  "widths": [32, 40, 80, 96, 192, 320], "depths": [2, 4, 4, 4, 4, 1], "strides": [1, 2, 2, 1, 2, 1]},
}


def out_size(h: int, stride: int) -> int:
    """Spatial size after a conv with padding k//2 (odd k) or a 1x1 conv, at this stride."""
    return (h - 1) // stride + 1


@dataclass(frozen=True)
class LayerSpec:
    c_in: int
    c_out: int
    stride: int
    h_in: int

    @property
    def h_out(self) -> int:
        return out_size(self.h_in, self.stride)

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.c_in == self.c_out


@dataclass(frozen=True)
class Layout:
    in_channels: int
    image_size: int
    stem_channels: int
    stem_stride: int
    first_channels: int
    head_channels: int
    layers: tuple[LayerSpec, ...]
    sub_blocks: int
    kernels: tuple[int, ...]

    @property
    def num_ops(self) -> int:
        """Candidates per sub-block: the kernels, then skip."""
        return len(self.kernels) + 1

    @property
    def skip(self) -> int:
        return len(self.kernels)

    @property
    def stem_size(self) -> int:
        return out_size(self.image_size, self.stem_stride)

    @property
    def head_size(self) -> int:
        return self.layers[-1].h_out if self.layers else self.stem_size

    # -- costs in mult-adds (not millions) ----------------------------------------------------
    def base_macs(self) -> int:
        """Stem, the fixed first MBConv (dw 3x3 + project) and the 1x1 head conv."""
        h = self.stem_size
        stem = h * h * self.stem_channels * 9 * self.in_channels
        first = h * h * self.stem_channels * 9 + h * h * self.stem_channels * self.first_channels
        c_last = self.layers[-1].c_out if self.layers else self.first_channels
        head = self.head_size ** 2 * c_last * self.head_channels
        return stem + first + head

    def dw_macs(self, layer: int, kernel: int) -> int:
        """One sub-block's depthwise conv (C_in channels) with this kernel."""
        s = self.layers[layer]
        return s.h_out ** 2 * kernel * kernel * s.c_in

    def pw1_macs(self, layer: int) -> int:
        """The expansion conv at full width S * C_in."""
        s = self.layers[layer]
        return s.h_in ** 2 * s.c_in * self.sub_blocks * s.c_in

    def pw2_macs(self, layer: int) -> int:
        """The projection conv at full width S * C_in."""
        s = self.layers[layer]
        return s.h_out ** 2 * self.sub_blocks * s.c_in * s.c_out


class LayoutName(Choice):
    imagenet = "imagenet"  # supplement Table 6
    cifar = "cifar"  # its CIFAR variant: stem and first stage at stride 1


@dataclass
class MobileLayoutConfig:
    """The unified MobileNet macro-architecture; fields left at 0 / empty come from `layout`.

    Shared by the search space (`space`) and the stand-alone network (`model`, name mobile)."""

    layout: LayoutName = opt(LayoutName.imagenet, "the base layout the other fields override")
    stem_channels: int = opt(0, "0 = from layout", low=0)
    stem_stride: int = opt(0, "0 = from layout", low=0)
    first_channels: int = opt(0, "the fixed MBConv k3 e1 after the stem; 0 = from layout", low=0)
    head_channels: int = opt(0, "the 1x1 conv before pooling; 0 = from layout", low=0)
    widths: List[int] = opt([], "output channels per stage (empty = from layout)")
    depths: List[int] = opt([], "unified blocks per stage (empty = from layout)")
    strides: List[int] = opt([], "stride of each stage's first block (empty = from layout)")
    sub_blocks: int = opt(6, "S = the largest expansion rate", low=1)
    kernels: List[int] = opt([3, 5, 7], "depthwise kernel candidates (distinct, odd, increasing)")
    min_expansion: int = opt(2, "fewest active sub-blocks per layer (>= 1: no layer is skipped whole)", low=1)


def layout_record(cfg) -> dict:
    """The MobileLayoutConfig fields of a config, as plain JSON values."""
    out = {}
    for f in fields(MobileLayoutConfig):
        v = getattr(cfg, f.name)
        out[f.name] = str(v) if isinstance(v, Choice) else (list(v) if isinstance(v, (list, tuple)) else v)
    return out


def build_layout(cfg, in_channels: int, image_size: int) -> Layout:
    """The layout named by cfg.layout, with any field the config sets overriding it."""
    base = LAYOUTS[str(cfg.layout)]
    pick = {k: (getattr(cfg, k) or v) for k, v in base.items()}
    widths, depths, strides = pick["widths"], pick["depths"], pick["strides"]
    if not len(widths) == len(depths) == len(strides):
        raise ConfigError("widths, depths and strides need one entry per stage")
    if cfg.sub_blocks < 1 or not 1 <= cfg.min_expansion <= cfg.sub_blocks:
        raise ConfigError(f"the mobile layout needs 1 <= min_expansion <= sub_blocks, got "
                          f"{cfg.min_expansion} and {cfg.sub_blocks}")
    if not cfg.kernels or any(k < 1 or k % 2 == 0 for k in cfg.kernels) or list(cfg.kernels) != sorted(
            set(cfg.kernels)):
        raise ConfigError(f"kernels must be distinct odd sizes in increasing order, got {cfg.kernels}")
    layers = []
    c, h = pick["first_channels"], out_size(image_size, pick["stem_stride"])
    for width, depth, stride in zip(widths, depths, strides):
        for i in range(depth):
            s = stride if i == 0 else 1
            layers.append(LayerSpec(c, width, s, h))
            c, h = width, out_size(h, s)
    return Layout(in_channels, image_size, pick["stem_channels"], pick["stem_stride"], pick["first_channels"],
                  pick["head_channels"], tuple(layers), cfg.sub_blocks, tuple(cfg.kernels))
