"""timm twins of generated architectures: same parameters, and the same outputs on copied weights."""
from __future__ import annotations

import random

import pytest
import torch
from test_sgnas import SGNAS_B, parse
from torch import nn

from archsearch.errors import ConfigError
from archsearch.interop.timm_mobile import arch_def, copy_weights, recipe, timm_network
from archsearch.spaces.mobile.arch import SKIP, MobileArch, sample_arch
from archsearch.spaces.mobile.layout import MobileLayoutConfig, build_layout
from archsearch.spaces.mobile.network import MobileNetwork

timm = pytest.importorskip("timm")


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def randomise_norms(net: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                for t, lo, hi in ((m.weight, 0.5, 1.5), (m.bias, -0.2, 0.2), (m.running_mean, -0.3, 0.3),
                                  (m.running_var, 0.5, 2.0)):
                    t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)


def assert_twins(layout, arch, classes, se, act, size, seed=0):
    torch.manual_seed(seed)
    ours = MobileNetwork(layout, arch, classes, se=se, act=act)
    twin = timm_network(arch, layout, classes, se=se, act=act)
    assert n_params(twin) == n_params(ours)
    randomise_norms(ours, seed)
    copy_weights(ours, twin)
    ours, twin = ours.double().eval(), twin.double().eval()
    x = torch.randn(2, layout.in_channels, size, size, dtype=torch.float64)
    with torch.no_grad():
        a, b = ours(x), twin(x)
    assert a.shape == b.shape == (2, classes)
    assert torch.allclose(a, b, atol=1e-10), (a - b).abs().max()
    return n_params(ours)


@pytest.mark.parametrize("se, act, params", [(False, "relu6", 3_768_904), (True, "hswish", 5_482_272),
                                             (True, "relu6", 5_482_272)])
def test_sgnas_b_in_timm_has_our_parameters_and_outputs(se, act, params):
    layout = build_layout(MobileLayoutConfig(layout="imagenet"), 3, 224)
    assert assert_twins(layout, parse(SGNAS_B), 1000, se, act, size=64) == params


def test_plain_se025_strings_squeeze_the_block_input_in_timm():
    """Why the strings carry 0.25 x e: timm's default convention builds another network."""
    from timm.models._efficientnet_builder import decode_arch_def
    from timm.models.efficientnet import EfficientNet

    layout = build_layout(MobileLayoutConfig(layout="imagenet"), 3, 224)
    arch = parse(SGNAS_B)
    ours = arch_def(arch, layout, se=True)
    assert ours[1] == ["ir_r1_k5.7.3.5_s2_e4_c32_se1"] and ours[0] == ["ds_r1_k3_s1_c16_se0.25"]
    plain = [[s[:s.index("_se")] + "_se0.25"] for [s] in ours]
    model = EfficientNet(decode_arch_def(plain), num_classes=1000, stem_size=32, fix_stem=True)
    assert n_params(model) == 4_200_284  # not 5,482,272
    model = EfficientNet(decode_arch_def(arch_def(arch, layout)), num_classes=1000, stem_size=32, fix_stem=True)
    assert n_params(model) == 3_768_904  # without SE the strings alone suffice


def test_cifar_layout_with_expansion_one_layers_and_a_stride_one_stem():
    layout = build_layout(MobileLayoutConfig(layout="cifar"), 3, 32)
    arch = sample_arch(layout, 1, False, random.Random(0))
    layers = list(arch.layers)
    layers[1] = (5, SKIP, SKIP, SKIP, SKIP, SKIP)  # a ds block with a residual (32 -> 32, stride 1)
    layers[2] = (SKIP, SKIP, 7, SKIP, SKIP, SKIP)  # and one without (stride 2)
    arch = MobileArch(tuple(layers))
    for se, act in ((False, "relu6"), (True, "hswish")):
        assert_twins(layout, arch, 10, se, act, size=32, seed=1)


def test_layouts_timm_would_round_are_refused():
    layout = build_layout(MobileLayoutConfig(layout="cifar", widths=[8, 12, 16, 24, 32, 40],
                                            depths=[1, 2, 2, 2, 2, 1], stem_channels=8, first_channels=8), 1, 16)
    arch = MobileArch(tuple((3, 3, 3, SKIP, SKIP, SKIP) for _ in layout.layers))
    r = recipe(arch, layout)
    assert not r["exact"] and "12 x 3 = 36" in r["why_not"]
    with pytest.raises(ConfigError, match="12 x 3 = 36"):
        timm_network(arch, layout, 10)
    even = MobileArch(tuple((3, 5, SKIP, SKIP, SKIP, SKIP) for _ in layout.layers))
    assert recipe(even, layout)["exact"]
    assert arch_def(even, layout)[0] == ["ds_r1_k3_s1_c8_noskip"]  # stem 8 -> 8: ours has no residual there
    assert_twins(layout, even, 10, True, "hswish", size=16, seed=2)
