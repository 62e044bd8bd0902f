"""SGNAS: the unified space's costs, fair and forced sampling, the generator and the strategy."""
from __future__ import annotations

import itertools
import json
import random
from collections import Counter

import pytest
import torch
from torch import nn

from archsearch.cli import main
from archsearch.config import SearchConfig, SpaceConfig, StrategyConfig, component
from archsearch.objectives.supervised import Supervised, classifier_head
from archsearch.spaces import create_space
from archsearch.spaces.mobile.arch import SKIP, MobileArch, sample_arch
from archsearch.spaces.mobile.cost import FlopsTable, network_cost
from archsearch.spaces.mobile.fair import fair_paths
from archsearch.spaces.mobile.layout import MobileLayoutConfig, build_layout
from archsearch.spaces.mobile.network import MobileNetwork
from archsearch.strategies import StepContext, create_strategy
from archsearch.strategies.sgnas import hc_loss
from archsearch.strategies.sgnas.generator import ArchitectureGenerator

TINY = {"layout": "cifar", "stem_channels": 4, "first_channels": 4, "head_channels": 16, "widths": [4, 8, 8],
            "depths": [1, 2, 1], "strides": [1, 2, 1]}


def tiny_space(**kw):
    cfg = component(SpaceConfig, "mobile-unified", **{**TINY, **kw})
    sp = create_space(cfg)
    sp.bind(3, 8)
    return sp


def parse(s: str) -> MobileArch:
    """e:[kernels] per layer (docs/methods/sgnas.md §6.3) -> architecture with skips last."""
    layers = []
    for tok in s.split():
        ks = [int(k) for k in tok.split(":")[1].strip("[]").split(",")]
        layers.append(tuple(ks + [SKIP] * (6 - len(ks))))
    return MobileArch(tuple(layers))


SGNAS_B = ("4:[5,7,3,5] 3:[5,5,3] 3:[5,5,3] 5:[5,5,3,5,5] 5:[5,5,5,3,3] 5:[3,5,5,5,5] 5:[3,5,5,7,7] 4:[5,5,3,7] "
           "4:[5,5,5,7] 4:[5,5,5,3] 2:[5,5] 3:[5,5,5] 3:[5,3,5] 4:[3,7,5,3] 4:[3,7,3,3] 4:[3,7,7,7] 4:[7,5,5,7] "
           "3:[5,3,5] 5:[3,3,7,3,7]")


def conv_macs_by_hooks(model: nn.Module, x: torch.Tensor) -> int:
    total = 0

    def hook(m, inp, out):
        nonlocal total
        total += out.shape[2] * out.shape[3] * m.out_channels * m.kernel_size[0] * m.kernel_size[1] \
            * (m.in_channels // m.groups)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return total


# -- lookup table and costs against the measured values of docs/methods/sgnas.md §5.2 ----------
def test_lookup_table_reproduces_the_measured_imagenet_and_cifar_values():
    def uniform(layout, e, k):
        return MobileArch(tuple(tuple([k] * e + [SKIP] * (6 - e)) for _ in layout.layers))

    im = build_layout(MobileLayoutConfig(layout="imagenet"), 3, 224)
    t = FlopsTable(im)
    assert len(im.layers) == 19 and t.base == pytest.approx(40.944, abs=1e-3)
    assert t.dw[0, :3].tolist() == pytest.approx([0.452, 1.254, 2.459], abs=1e-3)
    assert (t.pw1[0].item(), t.pw2[0].item(), t.pw2[18].item()) == pytest.approx((19.268, 9.634, 18.063), abs=1e-3)
    for (e, k), want in {(1, 3): 75.1, (6, 7): 556.1, (2, 3): 177.6, (2, 7): 212.7, (6, 3): 450.8}.items():
        assert t.discrete(uniform(im, e, k)) == pytest.approx(want, abs=0.06)  # §5.2: 0.1 (177.548 -> 177.6)
    ci = build_layout(MobileLayoutConfig(layout="cifar"), 3, 32)
    tc = FlopsTable(ci)
    assert tc.base == pytest.approx(8.258, abs=1e-3)
    for (e, k), want in {(1, 3): 19.42, (6, 7): 171.76, (6, 3): 137.36}.items():
        assert tc.discrete(uniform(ci, e, k)) == pytest.approx(want, abs=0.005)


def test_released_sgnas_b_costs_match_the_measured_numbers():
    im = build_layout(MobileLayoutConfig(layout="imagenet"), 3, 224)
    arch = parse(SGNAS_B)
    plain, se = network_cost(im, arch, 1000), network_cost(im, arch, 1000, se=True)
    assert FlopsTable(im).discrete(arch) == pytest.approx(324.3, abs=0.05)
    assert plain.conv_macs / 1e6 == pytest.approx(324.3, abs=0.05)
    assert plain.params / 1e6 == pytest.approx(3.77, abs=5e-3)
    assert se.conv_macs / 1e6 == pytest.approx(326.0, abs=0.05) and se.params / 1e6 == pytest.approx(5.48, abs=5e-3)


@pytest.mark.parametrize("se", [False, True])
def test_analytic_costs_equal_the_built_network(se):
    sp = tiny_space(min_expansion=1, forced_sampling=False)
    lay = sp.layout
    table = sp.flops_table()
    rng = random.Random(0)
    for _ in range(6):
        arch = sample_arch(lay, 1, False, rng)
        net = MobileNetwork(lay, arch, num_classes=5, se=se, act="hswish")
        want = network_cost(lay, arch, 5, se=se)
        assert conv_macs_by_hooks(net, torch.randn(1, 3, 8, 8)) == want.conv_macs
        assert sum(p.numel() for p in net.parameters()) == want.params
        if not se:
            assert table.discrete(arch) == pytest.approx(want.conv_macs / 1e6, rel=1e-12)


def test_soft_flops_equal_discrete_flops_on_one_hot_weights_and_are_differentiable():
    sp = tiny_space(min_expansion=1, forced_sampling=False)
    table = sp.flops_table()
    rng = random.Random(1)
    for _ in range(10):
        arch = sample_arch(sp.layout, 1, False, rng)
        w = sp.one_hot(arch)["arch"].double()
        assert table.soft(w).item() == pytest.approx(table.discrete(arch), rel=1e-12)
    logits = torch.randn(*sp.arch_shapes()["arch"], dtype=torch.float64, requires_grad=True)
    table.soft(torch.softmax(logits, -1)).backward()
    assert logits.grad.abs().sum() > 0


# -- supernet -----------------------------------------------------------------------------------
def test_unified_block_equals_the_sum_of_expansion_one_blocks():
    """Prefix computation and pruning give exactly sum_b W^p_b op_b(relu6(BN(W^e_b x)))."""
    sp = tiny_space(forced_sampling=False)
    torch.manual_seed(0)
    net = sp.build_supernet(3, 8, lambda c: classifier_head(c, 5)).double().eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    block = net.blocks[1]  # 4 -> 8, stride 2
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    layer = (5, SKIP, 3, SKIP, 7, SKIP)
    w = sp.one_hot(MobileArch((layer,) * 4))["arch"][1].double()
    c = block.spec.c_in
    h = nn.functional.relu6(block.expand_bn(block.expand(x)))
    ref = 0
    for b, k in enumerate(layer):
        if k != SKIP:
            op = block.candidates[b][sp.layout.kernels.index(k)]
            ref = ref + nn.functional.conv2d(op(h[:, b * c:(b + 1) * c]), block.project.weight[:, b * c:(b + 1) * c])
    ref = block.shadow_bn[3](ref)
    assert torch.allclose(block(x, w), ref, atol=1e-12)


# -- fair and forced sampling -------------------------------------------------------------------
def _layer_ops(paths, layer):
    return [p.layers[layer] for p in paths]


def test_fair_paths_without_forced_sampling_use_every_candidate_once_per_step():
    lay = build_layout(MobileLayoutConfig(layout="imagenet"), 3, 224)
    for seed in range(20):
        paths = fair_paths(lay, 2, False, 0, random.Random(seed))
        assert len(paths) == 5
        for layer in range(len(lay.layers)):
            seqs = _layer_ops(paths, layer)
            assert sorted(sum(op != SKIP for op in s) for s in seqs) == [2, 3, 4, 5, 6]
            used = {(b, op) for s in seqs for b, op in enumerate(s)}
            for b in range(6):
                for k in (3, 5, 7):
                    assert (b, k) in used
                assert ((b, SKIP) in used) == (b > 0)  # sub-block 0 of a static layer never skips


def test_fair_paths_with_forced_sampling_are_canonical_and_reach_the_coverage_bound():
    lay = build_layout(MobileLayoutConfig(layout="imagenet"), 3, 224)
    for seed in range(10):
        paths = fair_paths(lay, 2, True, 0, random.Random(seed))
        for p in paths:
            assert p == p.canonical()
        for layer in range(len(lay.layers)):
            seqs = _layer_ops(paths, layer)
            es = [sum(op != SKIP for op in s) for s in seqs]
            assert sorted(es) == [2, 3, 4, 5, 6]
            used = {(b, op) for s in seqs for b, op in enumerate(s)}
            # sub-block b is active in the passes with e > b: it can see min(3, that many) kernels
            bound = (sum(min(3, sum(e > b for e in es)) for b in range(6))
                     + sum(any(e <= b for e in es) for b in range(6)))
            assert len(used) == bound == 19


def test_fair_paths_with_the_codes_four_passes_leave_out_one_expansion():
    lay = build_layout(MobileLayoutConfig(layout="cifar"), 3, 32)
    paths = fair_paths(lay, 2, True, 4, random.Random(3))
    assert len(paths) == 4
    for layer in range(len(lay.layers)):
        es = [sum(op != SKIP for op in s) for s in _layer_ops(paths, layer)]
        assert len(set(es)) == 4 and set(es) <= {2, 3, 4, 5, 6}


def test_forced_sampling_keeps_one_arrangement_per_multiset():
    ops = (3, 5, SKIP)
    layers = list(itertools.product(ops, repeat=4))
    canon = {layer: MobileArch((layer,)).canonical().layers[0] for layer in layers}
    by_multiset = {}
    for layer in layers:
        by_multiset.setdefault(tuple(sorted(Counter(layer).items())), set()).add(canon[layer])
    assert all(len(v) == 1 for v in by_multiset.values())
    assert len(set(canon.values())) == len(by_multiset) == 15  # multisets of size 4 over 3 ops
    sp = tiny_space()
    rng = random.Random(0)
    for _ in range(20):
        a = sp.sample(rng)
        assert a == a.canonical() and min(a.expansions) >= 2
        assert sp.derive(sp.one_hot(a)) == a


# -- generator and strategy ---------------------------------------------------------------------
def test_hc_loss_matches_the_codes_values():
    f = torch.tensor(330.0, dtype=torch.float64)
    assert hc_loss(f, 320.0, 3e-4, 0.1, 1.2).item() == pytest.approx(0.036)
    assert hc_loss(torch.tensor(310.0, dtype=torch.float64), 320.0, 3e-4, 0.1, 1.2).item() == pytest.approx(0.030)
    assert hc_loss(torch.tensor(320.05, dtype=torch.float64), 320.0, 3e-4, 0.1, 1.2).item() == 0.0


def test_generator_size_and_output_shape():
    g = ArchitectureGenerator(hc_dim=10, hidden=32)
    assert sum(p.numel() for p in g.parameters()) == 67_969  # the released generator
    out = g(torch.zeros(3, 19, 24), torch.rand(3))
    assert out.shape == (3, 19, 24)


def sgnas_setup(warmup=1.0, **sg):
    sp = tiny_space()
    torch.manual_seed(0)
    model = sp.build_supernet(3, 8, lambda c: classifier_head(c, 5))
    table = sp.flops_table()
    lo = table.discrete(MobileArch(((3, 3, SKIP, SKIP, SKIP, SKIP),) * 4))
    hi = table.discrete(MobileArch(((7,) * 6,) * 4))
    opts = {"low_flops": lo + 0.2 * (hi - lo), "high_flops": lo + 0.8 * (hi - lo), "target_step": 0.01,
            "target_jitter": 0.0,
                "eval_step": 0.02, "hc_weight": 10.0, "prior_tolerance": 0.01 * (hi - lo)}
    opts.update(sg)
    cfg = component(StrategyConfig, "sgnas", supernet_epochs=warmup, arch_lr=1e-3, arch_weight_decay=0.0, **opts)
    strat = create_strategy(cfg, sp)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 5, (4,), generator=g)) for _ in range(8)]
    return sp, model, strat, opt, batches


def make_ctx(model, opt, batches, epoch, step=0):
    val = iter(batches[1:])
    obj = Supervised(SearchConfig().objective, type("I", (), {"num_classes": 5})())
    return StepContext(model=model, objective=obj, optimizer=opt, lr=0.1, grad_clip=0.0, step=step,
                       epoch=epoch, seed=0, next_val=lambda: next(val))


def test_generated_logits_mask_the_skips_that_forced_sampling_forbids():
    _sp, _model, strat, _opt, _batches = sgnas_setup()
    lg = strat.logits(torch.tensor([strat.mid_target, strat.c.low_flops]))
    assert lg.shape == (2, 4, 6, 4)
    assert torch.isinf(lg[..., :2, 3]).all() and torch.isfinite(lg[..., 2:, :]).all()
    archs = strat.generate([strat.c.low_flops, strat.c.high_flops])
    assert all(min(a.expansions) >= 2 and a == a.canonical() for a in archs)


def test_gradients_reach_the_generator_from_both_loss_terms():
    _sp, model, strat, opt, batches = sgnas_setup()
    model.eval().requires_grad_(False)
    ctx = make_ctx(model, opt, batches, epoch=2.0)
    c = strat.c
    target = c.low_flops
    p = torch.nn.functional.gumbel_softmax(strat.logits(torch.tensor([target]))[0], tau=5.0, dim=-1)
    obj = ctx.objective
    ce = obj.loss(model(batches[0][0], {"arch": p}), batches[0][1])
    hc = hc_loss(strat.flops.soft(p), target, c.hc_weight, 0.0, 1.2)
    params = list(strat.generator.parameters())
    g_ce = torch.autograd.grad(ce, params, retain_graph=True)
    g_hc = torch.autograd.grad(hc, params)
    assert hc.item() > 0
    for g in (g_ce, g_hc):
        assert sum(x.abs().sum().item() for x in g) > 0 and all(torch.isfinite(x).all() for x in g)


def test_supernet_step_trains_every_candidate_and_generator_step_freezes_the_supernet():
    _sp, model, strat, opt, batches = sgnas_setup(warmup=1.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m = strat.step(make_ctx(model, opt, batches, epoch=0.0), batches[0])
    assert m["passes"] == 5.0
    for block in model.blocks:
        for sub in block.candidates[:2]:  # sub-blocks 0-1 are active in all five passes
            for op in sub:
                assert not torch.equal(op[0].weight, before[_name(model, op[0].weight)])
    gen_before = [p.clone() for p in strat.generator.parameters()]
    weights_before = {k: v.clone() for k, v in model.state_dict().items()}
    m = strat.step(make_ctx(model, opt, batches, epoch=1.5, step=5), batches[0])
    assert {"gen_ce", "gen_hc", "gen_flops", "eval_hc", "tau"} <= set(m)
    assert all(torch.equal(v, weights_before[k]) for k, v in model.state_dict().items())
    assert any(not torch.equal(a, b) for a, b in zip(gen_before, strat.generator.parameters()))
    assert strat.best_step.item() == 5 and strat.best_hc.item() == pytest.approx(m["eval_hc"])
    assert m["tau"] == pytest.approx(5.0 * 0.95 ** 0)


def _name(model, tensor):
    return next(k for k, v in model.named_parameters() if v is tensor)


def test_search_then_generate_end_to_end(tmp_path):
    overrides = [o for o in TINY_RUN if o not in ("optim.epochs=3", "checkpoint_every=1")] + ["optim.epochs=2"]
    run = tmp_path / "run"
    assert main(["search", "sgnas_fashionmnist", *overrides, "--out", str(run), "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["architecture"]["space"] == "mobile-unified"
    assert main(["generate", str(run), "--flops", "0.025", "--flops", "0.035"]) == 0
    rec = json.loads((run / "generated" / "flops_0p025.json").read_text())
    assert len(rec["architecture"]["layers"]) == 6 and len(rec["architecture"]["blocks"]) == 6
    assert rec["flops_M"] > 0 and rec["generator"] == "best"
    assert (run / "generated" / "layers_0p025_0p035.png").stat().st_size > 0
    assert main(["plot", str(run), "--formats", "png"]) == 0  # the derived architecture's layer diagram
    assert (run / "figures" / "cells.png").stat().st_size > 0
    # retraining inherits the searched layout, from a generated file or from the run directory
    train = ["data.name=generated", "data.generated.channels=1", "data.generated.image_size=8",
             "data.generated.num_samples=16", "data.subset=0", "data.batch_size=4", "data.image_size=0",
             "optim.epochs=1", "steps_per_epoch=1", "eval_batches=1", "--no-progress"]
    for ref in ("--genotype", str(run / "generated" / "flops_0p025.json")), ("--run", str(run)):
        out = tmp_path / f"train-{ref[0][2:]}"
        assert main(["train", "train_sgnas_fashionmnist", *ref, *train, "--out", str(out)]) == 0
        trained = json.loads((out / "summary.json").read_text())
        assert trained["architecture"]["layout"]["widths"] == [4, 4, 8, 8, 8, 8]


TINY_RUN = [
    "data.name=generated", "data.generated.channels=1", "data.generated.image_size=8",
    "data.generated.num_samples=32", "data.image_size=0", "data.subset=0", "data.batch_size=4",
    "steps_per_epoch=2", "optim.epochs=3", "strategy.supernet_epochs=1", "val_batches=1", "checkpoint_every=1",
    "space.depths=[1,1,1,1,1,1]", "space.widths=[4,4,8,8,8,8]", "space.head_channels=8",
    "space.stem_channels=4", "space.first_channels=4",
    "strategy.low_flops=0.02", "strategy.high_flops=0.04", "strategy.target_step=0.002",
    "strategy.eval_step=0.005", "strategy.prior_tolerance=0.002", "strategy.hc_targets=2",
]


def test_interrupted_run_resumes_to_the_same_state(tmp_path, monkeypatch):
    from archsearch.strategies.sgnas import Sgnas
    from archsearch.utils.io import load_checkpoint

    assert main(["search", "sgnas_fashionmnist", *TINY_RUN, "--out", str(tmp_path / "full"), "--no-progress"]) == 0
    step = Sgnas.step

    def stop_at_4(self, ctx, train):
        if ctx.step == 4:  # inside the generator phase
            raise KeyboardInterrupt
        return step(self, ctx, train)

    monkeypatch.setattr(Sgnas, "step", stop_at_4)
    assert main(["search", "sgnas_fashionmnist", *TINY_RUN, "--out", str(tmp_path / "cut"), "--no-progress"]) == 130
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 4
    monkeypatch.setattr(Sgnas, "step", step)
    assert main(["search", "sgnas_fashionmnist", *TINY_RUN, "--out", str(tmp_path / "cut"), "--no-progress"]) == 0
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    for part in ("model", "strategy"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    assert (tmp_path / "full" / "genotype.json").read_text() == (tmp_path / "cut" / "genotype.json").read_text()


def test_a_one_hot_supernet_path_is_the_stand_alone_network_with_inherited_weights():
    from archsearch.spaces.mobile.network import inherit_from_supernet

    sp = tiny_space(forced_sampling=False)
    torch.manual_seed(0)
    def head(c):
        return classifier_head(c, 5)

    supernet = sp.build_supernet(3, 8, head).double()
    for m in supernet.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    supernet.eval()
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    rng = random.Random(4)
    for _ in range(4):
        arch = sample_arch(sp.layout, 2, False, rng)  # random sub-block positions, mixed kernels
        net = MobileNetwork(sp.layout, arch, 5, head=head).double()
        inherit_from_supernet(net, supernet, arch).eval()
        w = {k: v.double() for k, v in sp.one_hot(arch).items()}
        assert torch.allclose(net(x), supernet(x, w), atol=1e-10)


def test_more_passes_than_expansion_rates_repeat_the_fair_block():
    lay = build_layout(MobileLayoutConfig(layout="cifar"), 3, 32)
    for forced in (True, False):
        paths = fair_paths(lay, 2, forced, 10, random.Random(5))
        assert len(paths) == 10
        for layer in range(len(lay.layers)):
            es = [sum(op != SKIP for op in s) for s in _layer_ops(paths, layer)]
            assert sorted(es[:5]) == sorted(es[5:]) == [2, 3, 4, 5, 6]
