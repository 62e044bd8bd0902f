"""A timm EfficientNet equal to the stand-alone network of a generated architecture (network.py).

timm's block strings describe our MBConvs (`ir`: expansion conv, a mixed-kernel depthwise stage
with one C_in-channel group per kernel in order, projection; `ds` at expansion 1), and its
EfficientNet has our stem, 1x1 head conv, pooling, dropout and classifier. Three conventions differ
and are pinned here, so parameters and outputs are equal (tests/test_timm_mobile.py):

* SE: SGNAS squeezes the expanded channels to a quarter, ReLU, hard sigmoid, in every network.
  EfficientNet's builder divides a block's se ratio by its expansion, so the block strings carry
  0.25 x e (arch.block_string), and the SE layer is timm's SqueezeExcite with a hard-sigmoid gate,
  a ReLU squeeze and widths rounded down like ours. With plain `se0.25` timm squeezes the block
  input instead (SGNAS-B: 4.20M parameters instead of 5.48M).
* Widths: output widths are kept (no round_chs_fn); timm rounds an `ir` block's hidden width to a
  multiple of 8, so a layout where that changes a width has no exact twin and is refused.
* Stem: EfficientNet's stem conv has stride 2; a stride-1 stem (the CIFAR layout) replaces it.
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from archsearch.errors import ConfigError
from archsearch.spaces.mobile.arch import MobileArch, block_string, block_strings
from archsearch.spaces.mobile.layout import Layout

TIMM_ACTIVATIONS = {"relu6": "relu6", "hswish": "hard_swish"}  # ours -> timm's name
SE_LAYER = "timm SqueezeExcite(gate_layer='hard_sigmoid', force_act_layer=nn.ReLU, rd_round_fn=floor)"
HIDDEN_DIVISOR = 8  # timm's make_divisible for an ir block's hidden width


def arch_def(arch: MobileArch, layout: Layout, se: bool = False) -> list[list[str]]:
    """timm's arch_def: the fixed first block (ds k3, never a residual, as ours), then one stage
    per searchable layer."""
    first = block_string(layout.first_channels, [3], 1, se, skip=layout.stem_channels != layout.first_channels)
    return [[first]] + [[b] for b in block_strings(arch, layout, se)]


def mismatch(arch: MobileArch, layout: Layout) -> str | None:
    """Why timm cannot build this network exactly, or None."""
    for i, (spec, e) in enumerate(zip(layout.layers, arch.expansions)):
        mid = spec.c_in * e
        if e > 1 and mid % HIDDEN_DIVISOR:
            return (f"layer {i}: timm rounds the hidden width {spec.c_in} x {e} = {mid} to a multiple of "
                    f"{HIDDEN_DIVISOR}")
    return None


def recipe(arch: MobileArch, layout: Layout) -> dict:
    """What a timm user needs, for the generated JSON (no timm import)."""
    why = mismatch(arch, layout)
    return {
        "exact": why is None,
        **({"why_not": why} if why else {}),
        "arch_def": arch_def(arch, layout),
        "arch_def_se": arch_def(arch, layout, se=True),
        "stem_size": layout.stem_channels,
        "stem_stride": layout.stem_stride,
        "num_features": layout.head_channels,
        "round_chs_fn": "identity",
        "se_layer": SE_LAYER,
        "python": "archsearch.interop.timm_mobile.timm_network(arch, layout, num_classes, se=..., act=...)",
    }


def _identity(channels: int) -> int:
    return channels


def _se_width(channels: float) -> int:
    return max(1, int(channels))  # = cost.se_width: mid // 4, at least 1


def timm_network(arch: MobileArch, layout: Layout, num_classes: int, se: bool = False, act: str = "relu6",
                 dropout: float = 0.2, bn_momentum: float = 0.1) -> nn.Module:
    """timm's EfficientNet with the parameters and, given the same weights, the outputs of
    MobileNetwork(layout, arch, num_classes, se=se, act=act)."""
    try:
        from timm.layers import get_act_layer
        from timm.models._efficientnet_blocks import SqueezeExcite
        from timm.models._efficientnet_builder import decode_arch_def
        from timm.models.efficientnet import EfficientNet
    except ImportError:
        raise ConfigError("a timm model needs timm: pip install 'archsearch[timm]'") from None
    if act not in TIMM_ACTIVATIONS:
        raise ConfigError(f"activation {act!r} has no timm name; one of {sorted(TIMM_ACTIVATIONS)}")
    why = mismatch(arch, layout)
    if why:
        raise ConfigError(f"no exact timm model for this layout: {why}")
    se_layer = partial(SqueezeExcite, gate_layer="hard_sigmoid", force_act_layer=nn.ReLU, rd_round_fn=_se_width)
    model = EfficientNet(decode_arch_def(arch_def(arch, layout, se)), num_classes=num_classes,
                         num_features=layout.head_channels, in_chans=layout.in_channels,
                         stem_size=layout.stem_channels, fix_stem=True, act_layer=get_act_layer(TIMM_ACTIVATIONS[act]),
                         se_layer=se_layer, round_chs_fn=_identity, drop_rate=dropout)
    if layout.stem_stride != 2:
        model.conv_stem = nn.Conv2d(layout.in_channels, layout.stem_channels, 3, layout.stem_stride, 1, bias=False)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = bn_momentum
    return model


@torch.no_grad()
def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy every parameter and buffer of src into dst, matched by order and shape (our network
    and its timm twin register them in the same order)."""
    a, b = list(src.state_dict().items()), list(dst.state_dict().items())
    if len(a) != len(b):
        raise ConfigError(f"the networks differ: {len(a)} tensors against {len(b)}")
    for (ka, va), (kb, vb) in zip(a, b):
        if va.shape != vb.shape:
            raise ConfigError(f"the networks differ at {ka} {tuple(va.shape)} / {kb} {tuple(vb.shape)}")
    dst.load_state_dict({kb: va for (_ka, va), (kb, _vb) in zip(a, b)})
