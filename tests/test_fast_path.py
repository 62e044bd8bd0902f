"""The fast and batched supernet paths compute the reference function: per op, per cell kind, per
partial channel setting, soft and one-hot weights, training and eval mode; and their kernels one by one."""
import copy
import random

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_same_step, supernet_pair

from archsearch.config import SpaceConfig, component
from archsearch.objectives.supervised import classifier_head
from archsearch.spaces import create_space
from archsearch.spaces.darts import batched
from archsearch.spaces.darts.batched import grouped_bn
from archsearch.spaces.darts.kernels import (
    depthwise_weight_grad,
    dilated_depthwise,
    pointwise,
    scaled_bn,
    shared_bn,
)
from archsearch.spaces.darts.ops import DARTS_OPS
from archsearch.spaces.darts.space import S1_NORMAL, S1_REDUCE
from archsearch.spaces.darts.supernet import DartsSupernet

DT = torch.float64
CL = torch.channels_last


def _pair(ops, partial, impl="fast"):
    return supernet_pair(ops, partial, impl)


def _assert_same(fast, ref, x, y, weights, stats=True):
    assert_same_step(fast, ref, x, y, weights, stats)


@pytest.mark.parametrize("op", [o for o in DARTS_OPS if o != "none"])
@pytest.mark.parametrize("partial", [1, 2])
@pytest.mark.parametrize("impl", ["fast", "batched"])
def test_every_op_fast_equals_reference(op, partial, impl):
    fast, ref = _pair(["none", op], partial, impl)
    torch.manual_seed(1)
    x, y = torch.randn(3, 3, 16, 16, dtype=DT), torch.randint(0, 3, (3,))
    soft = {k: torch.softmax(torch.randn(14, 2, dtype=DT), -1).requires_grad_() for k in ("normal", "reduce")}
    soft["reduce_edges"] = torch.rand(14, dtype=DT).requires_grad_()  # edge normalisation
    _assert_same(fast, ref, x, y, soft)  # training mode: batch statistics, running stats updated
    one_hot = {k: F.one_hot(torch.randint(0, 2, (14,)), 2).to(DT) for k in ("normal", "reduce")}
    # ops with weight zero are not run, so their BN running statistics are left as they were
    _assert_same(fast, ref, x, y, one_hot, stats=False)
    fast.load_state_dict(ref.state_dict())
    fast.eval()
    ref.eval()
    _assert_same(fast, ref, x, y, soft)  # eval mode: each BN's own running statistics


@pytest.mark.parametrize("partial", [1, 2])
@pytest.mark.parametrize("impl", ["fast", "batched"])
def test_all_ops_soft_and_sampled_one_hot_weights_equal_reference(partial, impl):
    """Every candidate on every edge with random soft weights and edge weights, then the one-hot
    weights of a sampled genotype (the random-search step)."""
    fast, ref = _pair(DARTS_OPS, partial, impl)
    torch.manual_seed(1)
    x, y = torch.randn(4, 3, 16, 16, dtype=DT), torch.randint(0, 3, (4,))
    soft = {k: torch.softmax(torch.randn(14, 8, dtype=DT), -1).requires_grad_() for k in ("normal", "reduce")}
    soft["normal_edges"] = torch.rand(14, dtype=DT).requires_grad_()
    _assert_same(fast, ref, x, y, soft)
    space = create_space(component(SpaceConfig))
    one_hot = {k: v.to(DT) for k, v in space.one_hot(space.sample(random.Random(3))).items()}
    _assert_same(fast, ref, x, y, one_hot, stats=False)  # zero-weight ops are not run: their BN stats rest


@pytest.mark.parametrize("partial", [1, 2])
@pytest.mark.parametrize("impl", ["fast", "batched"])
def test_odd_maps_work_and_fast_equals_reference(partial, impl):
    """13 -> 7 -> 4: every strided op (and PC-DARTS's bypass pool) gives ceil(n/2), so odd
    inputs such as UnNAS's 321 px Cityscapes crops and 81 px jigsaw tiles run."""
    fast, ref = _pair(DARTS_OPS, partial, impl)
    torch.manual_seed(1)
    x, y = torch.randn(2, 3, 13, 13, dtype=DT), torch.randint(0, 3, (2,))
    soft = {k: torch.softmax(torch.randn(14, 8, dtype=DT), -1).requires_grad_() for k in ("normal", "reduce")}
    _assert_same(fast, ref, x, y, soft)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("size", [16, 8])
def test_dilated_depthwise_matches_conv_and_skips_unwanted_weight_grads(k, size):
    conv = torch.nn.Conv2d(4, 4, k, padding=k - 1, dilation=2, groups=4, bias=False).to(DT)
    x = torch.randn(2, 4, size, size, dtype=DT).contiguous(memory_format=CL).requires_grad_()
    g = torch.randn(2, 4, size, size, dtype=DT)
    expect = torch.autograd.grad(conv(x), [x, conv.weight], g)
    got = torch.autograd.grad(dilated_depthwise(x, conv), [x, conv.weight], g)
    for a, b in zip(got, expect):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # gradients of the input alone: the weight gradient is neither needed nor computed
    torch.testing.assert_close(torch.autograd.grad(dilated_depthwise(x, conv), x, g)[0], expect[0])


@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("size", [2, 3, 4, 6])
def test_depthwise_weight_grad_tiling(k, size):
    x = torch.randn(3, 4, size, size, dtype=DT).contiguous(memory_format=CL)
    w = torch.randn(4, 1, k, k, dtype=DT, requires_grad=True)
    g = torch.randn(3, 4, size, size, dtype=DT)
    expect = torch.autograd.grad(F.conv2d(x, w, None, 1, k // 2, 1, 4), w, g)[0]
    torch.testing.assert_close(depthwise_weight_grad(g, x, w, k // 2), expect, rtol=1e-10, atol=1e-12)


def test_pointwise_is_the_1x1_conv():
    conv = torch.nn.Conv2d(4, 6, 1, bias=False).to(DT)
    x = torch.randn(2, 4, 5, 5, dtype=DT).contiguous(memory_format=CL)
    y = pointwise(x, conv)
    torch.testing.assert_close(y, conv(x))
    assert y.is_contiguous(memory_format=CL)


@pytest.mark.parametrize("fmt", [CL, torch.contiguous_format])
def test_scaled_bn_is_weight_times_bn(fmt):
    """Also on channels-last, where torch's BN backward misreads an expanded (stride-0) gain."""
    bn_a, bn_b = (torch.nn.BatchNorm2d(4, affine=False).to(DT) for _ in range(2))
    x = torch.randn(3, 4, 5, 5, dtype=DT).contiguous(memory_format=fmt).requires_grad_()
    s = torch.tensor(0.7, dtype=DT, requires_grad=True)
    g = torch.randn(3, 4, 5, 5, dtype=DT)
    expect = torch.autograd.grad(s * bn_a(x), [x, s], g)
    got = torch.autograd.grad(scaled_bn(bn_b, x, s), [x, s], g)
    for a, b in zip(got, expect):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(bn_b.running_var, bn_a.running_var)
    assert bn_b.num_batches_tracked == bn_a.num_batches_tracked == 1


def test_scaled_bn_keeps_the_activation_dtype():
    bn = torch.nn.BatchNorm2d(4, affine=False).to(DT)
    x = torch.randn(3, 4, 5, 5, dtype=DT)
    w = torch.tensor(0.5)  # float32 weight, float64 network: w * bn(x) is float64
    torch.testing.assert_close(scaled_bn(bn, x, w), w * torch.nn.BatchNorm2d(4, affine=False).to(DT)(x))


def test_shared_bn_updates_every_module_and_defers_in_eval():
    bns = [torch.nn.BatchNorm2d(4, affine=False).to(DT) for _ in range(3)]
    solo = torch.nn.BatchNorm2d(4, affine=False).to(DT)
    with torch.no_grad():
        for i, bn in enumerate(bns):
            bn.running_mean.fill_(i)
    solo.load_state_dict(bns[2].state_dict())
    x = torch.randn(3, 4, 5, 5, dtype=DT) * 2 + 1
    torch.testing.assert_close(shared_bn(bns, x), solo(x))
    torch.testing.assert_close(bns[2].running_mean, solo.running_mean)
    torch.testing.assert_close(bns[2].running_var, solo.running_var)
    assert all(bn.num_batches_tracked == 1 for bn in bns)
    bns[0].eval()
    assert shared_bn(bns, x) is None  # modules in eval mode would not agree


def _soft(ops, edges=False):
    w = {k: torch.softmax(torch.randn(14, ops, dtype=DT), -1).requires_grad_() for k in ("normal", "reduce")}
    if edges:  # PC-DARTS edge normalisation on both cell kinds
        w.update({k + "_edges": torch.rand(14, dtype=DT).requires_grad_() for k in ("normal", "reduce")})
    return w


@pytest.mark.parametrize("partial", [1, 2, 4])
@pytest.mark.parametrize("size", [16, 13])
def test_batched_equals_reference(partial, size):
    """Every DARTS op on every edge, so each group of edges leaving a state runs grouped kernels:
    soft weights (with edge weights) in training and eval mode, one-hot weights (subsets of a group)."""
    net, ref = _pair(DARTS_OPS, partial, "batched")
    torch.manual_seed(1)
    x, y = torch.randn(2, 3, size, size, dtype=DT), torch.randint(0, 3, (2,))
    soft = _soft(8, edges=True)
    _assert_same(net, ref, x, y, soft)
    one_hot = {k: F.one_hot(torch.randint(1, 8, (14,)), 8).to(DT) for k in ("normal", "reduce")}
    _assert_same(net, ref, x, y, one_hot, stats=False)
    net.load_state_dict(ref.state_dict())
    net.eval()
    ref.eval()
    _assert_same(net, ref, x, y, soft)


def test_batched_architecture_gradient_alone():
    """autograd.grad on the architecture weights only (DARTS-1st's arch step): the network weight
    gradients are not wanted, and the dilated weight gradients are skipped."""
    net, ref = _pair(DARTS_OPS, 1, "batched")
    x, y = torch.randn(2, 3, 8, 8, dtype=DT), torch.randint(0, 3, (2,))
    soft = _soft(8)
    got, expect = (torch.autograd.grad(F.cross_entropy(m(x, soft), y), list(soft.values())) for m in (net, ref))
    for a, b in zip(got, expect):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_batched_runs_grouped_kernels_and_keeps_the_state_dict(monkeypatch):
    """Groups of 4, 3 and 2 edges (and the stride-2 skip of reduction cells) are batched, and the
    module tree, hence the state_dict, is the reference's."""
    net, ref = _pair(DARTS_OPS, 1, "batched")
    seen = []
    for kind, fn in list(batched.GROUPED.items()):
        monkeypatch.setitem(batched.GROUPED, kind, lambda ops, *a, f=fn, k=kind: seen.append((k.__name__, len(ops)))
                            or f(ops, *a))
    net(torch.randn(2, 3, 8, 8, dtype=DT), _soft(8))
    assert {("SepConv", 4), ("SepConv", 3), ("SepConv", 2), ("DilConv", 4), ("FactorizedReduce", 4)} <= set(seen)
    fresh = DartsSupernet({k: [list(DARTS_OPS)] * 14 for k in ("normal", "reduce")}, 3,
                          lambda c: classifier_head(c, 3), init_channels=4, layers=3, impl="reference")
    assert [(k, v.shape) for k, v in net.state_dict().items()] == [(k, v.shape) for k, v in fresh.state_dict().items()]


def test_batched_equals_reference_with_per_edge_op_lists():
    """RobustDARTS S1: every edge has its own pair of candidates, so a group mixes op kinds."""
    net, ref = _pair({"normal": S1_NORMAL, "reduce": S1_REDUCE}, 1, "batched")
    x, y = torch.randn(2, 3, 8, 8, dtype=DT), torch.randint(0, 3, (2,))
    _assert_same(net, ref, x, y, _soft(2))


@pytest.mark.parametrize("momentum", [0.1, None])
def test_grouped_bn_is_each_module_on_its_block(momentum):
    bns = [torch.nn.BatchNorm2d(4, affine=False, momentum=momentum).to(DT) for _ in range(3)]
    solo = copy.deepcopy(bns)
    with torch.no_grad():
        for i, bn in enumerate(bns + solo):
            bn.running_mean.fill_(i % 3)
    x = (torch.randn(3, 12, 5, 5, dtype=DT) * 2 + 1).contiguous(memory_format=CL)
    gain = torch.rand(3, dtype=DT).repeat_interleave(4)
    expect = torch.cat([s(x[:, 4 * i: 4 * i + 4]) for i, s in enumerate(solo)], 1) * gain.view(1, -1, 1, 1)
    torch.testing.assert_close(grouped_bn(bns, x, gain), expect)
    for a, b in zip(bns, solo):
        torch.testing.assert_close(a.running_mean, b.running_mean)
        torch.testing.assert_close(a.running_var, b.running_var)
        assert a.num_batches_tracked == b.num_batches_tracked == 1
    bns[0].num_batches_tracked += 1  # cumulative averages with different counts: one module at a time
    solo[0].num_batches_tracked += 1
    expect = torch.cat([s(x[:, 4 * i: 4 * i + 4]) for i, s in enumerate(solo)], 1)
    torch.testing.assert_close(grouped_bn(bns, x), expect)
    for a, b in zip(bns, solo):
        torch.testing.assert_close(a.running_var, b.running_var)
        a.eval()
        b.eval()
    expect = torch.cat([s(x[:, 4 * i: 4 * i + 4]) for i, s in enumerate(solo)], 1)
    torch.testing.assert_close(grouped_bn(bns, x), expect)  # eval: each module's running statistics


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("stride,dilation,size", [(1, 1, 8), (2, 1, 8), (1, 2, 8), (2, 2, 8), (1, 2, 7), (2, 2, 7),
                                                  (1, 1, 3)])
def test_grouped_depthwise_is_the_conv_of_each_block(shared, stride, dilation, size):
    """Edges leaving one state: one depthwise conv over their concatenated weights, on the shared
    input repeated per edge or on one block per edge; only the unrepeated input is kept for
    backward; the input gradient alone (weight gradient unwanted) is right too."""
    convs = [torch.nn.Conv2d(4, 4, 3, stride, dilation, dilation, groups=4, bias=False).to(DT) for _ in range(3)]
    x = torch.randn(2, 4 if shared else 12, size, size, dtype=DT).contiguous(memory_format=CL).requires_grad_()
    y = batched._depthwise(x, convs, shared)
    w = torch.cat([c.weight for c in convs])
    expect = F.conv2d(x.repeat(1, 3, 1, 1) if shared else x, w, None, stride, dilation, dilation, 12)
    torch.testing.assert_close(y, expect)
    g = torch.randn_like(expect)
    params = [x] + [c.weight for c in convs]
    want = torch.autograd.grad(expect, params, g)
    for a, b in zip(torch.autograd.grad(y, params, g), want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(batched._depthwise(x, convs, shared), x, g)[0], want[0])


@pytest.mark.parametrize("impl", ["fast", "batched"])
def test_paths_train_under_bf16_autocast(impl):
    """bfloat16 autocast (CPU here, CUDA in test_cuda.py): the custom backwards meet one dtype, the
    BN gains and statistics stay float32, and the result is the reference's within bf16 rounding."""
    torch.manual_seed(0)
    names = {kind: [list(DARTS_OPS)] * 14 for kind in ("normal", "reduce")}
    net = DartsSupernet(names, 3, lambda c: classifier_head(c, 3), init_channels=4, layers=3, impl=impl)
    ref = copy.deepcopy(net)
    ref.impl = "reference"
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 3, (4,))
    alphas = {k: (1e-3 * torch.randn(14, 8)).requires_grad_() for k in ("normal", "reduce")}
    out = []
    for m, amp in ((net, True), (ref, False)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(m(x, {k: torch.softmax(v, -1) for k, v in alphas.items()}).float(), y)
        grads = torch.autograd.grad(loss, [*alphas.values(), *m.parameters()], allow_unused=True)
        out.append((loss.detach(), grads))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=2e-2, atol=2e-2)
    for a, b, p in zip(out[0][1], out[1][1], [*alphas.values(), *net.parameters()]):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.dtype == p.dtype and torch.isfinite(a).all()
    assert all(b.dtype in (torch.float32, torch.int64) for b in net.buffers())
