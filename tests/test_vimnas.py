"""VIM-NAS: Table-1 networks, reparameterised sampling, the gradient paths of one step, priors,
derivation from the expected weights, early stop, presets."""
import json

import numpy as np
import pytest
import torch
from helpers import context, tiny_setup, tiny_space
from torch import nn

from archsearch.cli import main
from archsearch.config import StrategyConfig, component, load_config
from archsearch.errors import ConfigError
from archsearch.strategies import create_strategy
from archsearch.strategies.base import forward_loss
from archsearch.strategies.vimnas import CRB, EdgeNorm, _generator, _randn, table1_channels


def _vimnas(space="darts", name="vimnas", edge_norm=True, **vim):
    cfg = component(StrategyConfig, name, arch_lr=0.025, edge_norm=edge_norm, **vim)
    return create_strategy(cfg, tiny_space(space))


@pytest.mark.parametrize("name,channels", [
    ("vimnas-s", [(3, 1)]),
    ("vimnas", [(3, 14), (14, 1)]),
    ("vimnas-l", [(3, 14), (14, 14), (14, 14), (14, 14), (14, 1)]),
])
@pytest.mark.parametrize("space,ops", [("darts", 8), ("darts-s2", 2)])
def test_table1_networks_map_the_prior_to_an_edges_by_ops_map(name, channels, space, ops):
    strat = _vimnas(space, name)
    for kind in ("normal", "reduce"):
        crbs = list(strat.nets[kind].layers)
        assert all(isinstance(c, CRB) for c in crbs)
        assert [(c[0].in_channels, c[0].out_channels) for c in crbs] == channels
        for i, c in enumerate(crbs):  # conv, relu, batch norm, in that order; 3x3 'same'
            norm = EdgeNorm if i == len(crbs) - 1 else nn.BatchNorm2d  # default last_norm=edge
            assert [type(m) for m in c] == [nn.Conv2d, nn.ReLU, norm]
            assert c[0].kernel_size == (3, 3) and c[0].padding == (1, 1)
        assert strat.prior(kind).shape == (3, 14, ops)
    literal = _vimnas(space, name, last_norm="map")  # Table 1 read literally: BN over the map
    assert all(type(c[2]) is nn.BatchNorm2d for c in literal.nets["normal"].layers)
    mu = strat.mean_logits()
    assert {k: tuple(v.shape) for k, v in mu.items()} == {"normal": (14, ops), "reduce": (14, ops)}
    w = strat.sample(0, 0, 0)
    assert w["normal"].shape == (14, ops) and w["normal_edges"].shape == (14,)
    torch.testing.assert_close(w["normal"].sum(-1), torch.ones(14))
    assert table1_channels(name, 14) == [channels[0][0]] + [c[1] for c in channels]


def test_sample_is_softmax_of_mean_plus_unit_noise_and_noise_zero_is_the_mean():
    strat = _vimnas(edge_norm=False)
    mu = strat.mean_logits()
    gen = _generator(7 * 1_000_003 + 3 * 7 + 1)
    eps = {k: _randn(mu[k].shape, gen, mu[k]) for k in ("normal", "reduce")}
    w = strat.sample(7, 3, 1)
    for k in ("normal", "reduce"):
        torch.testing.assert_close(w[k], torch.softmax(mu[k] + eps[k], -1))
    assert not torch.allclose(w["normal"], strat.sample(7, 4, 1)["normal"]), "fresh noise every step"
    quiet = _vimnas(edge_norm=False, noise=0.0)
    mu = quiet.mean_logits()
    torch.testing.assert_close(quiet.sample(7, 3, 1)["normal"], torch.softmax(mu["normal"], -1))
    torch.testing.assert_close(quiet.expected_weights()["normal"], torch.softmax(mu["normal"], -1))


def test_architecture_step_moves_only_the_generator_by_the_validation_gradient():
    sp, model, strat, opt, batches = tiny_setup("vimnas", arch_lr=0.025)
    ctx = context(model, opt, batches, step=5, seed=3)
    val = batches[3]
    params = list(strat.parameters())
    # the expected update, computed independently: Adam on dL_val/dphi under the step's sample
    loss, _, _ = forward_loss(ctx, val, strat.sample(3, 5, 0))
    grads = torch.autograd.grad(loss, params)
    gen_grads = [g for (n, _), g in zip(strat.named_parameters(), grads) if n.startswith("nets.")]
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in gen_grads) > 0, "the validation loss reaches the generator"
    copies = [p.detach().clone().requires_grad_() for p in params]
    ref = torch.optim.Adam(copies, lr=0.025, betas=(0.5, 0.999), weight_decay=1e-3)
    for c, g in zip(copies, grads):
        c.grad = g.clone()
    ref.step()
    w_before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None

    strat.arch_step(ctx, val)
    for got, want in zip(strat.parameters(), copies):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert all(p.grad is None for p in model.parameters()), "no gradient reaches the supernet weights"
    assert all(torch.equal(a, b) for a, b in zip(w_before, model.parameters()))


def test_weight_step_trains_the_supernet_on_a_detached_sample():
    sp, model, strat, opt, batches = tiny_setup("vimnas", arch_lr=0.025)
    ctx = context(model, opt, batches, step=2, seed=1)
    twin_sp, twin_model, twin, twin_opt, _ = tiny_setup("vimnas", arch_lr=0.025)
    twin_ctx = context(twin_model, twin_opt, batches, step=2, seed=1)
    twin.arch_step(twin_ctx, batches[3])
    # the weights take SGD on the train loss under the updated generator's sample (salt 1)
    loss, _, _ = forward_loss(twin_ctx, batches[0], {k: v.detach() for k, v in twin.sample(1, 2, 1).items()})
    grads = torch.autograd.grad(loss, list(twin_model.parameters()), allow_unused=True)
    expect = [p.detach().clone().requires_grad_() for p in twin_model.parameters()]
    ref = torch.optim.SGD(expect, lr=0.1, momentum=0.9, weight_decay=3e-4)
    for p, g in zip(expect, grads):
        p.grad = None if g is None else g.clone()
    nn.utils.clip_grad_norm_([p for p in expect if p.grad is not None], 5.0)
    ref.step()

    metrics = strat.step(ctx, batches[0])
    for got, want in zip(strat.parameters(), twin.parameters()):  # the weight step leaves phi alone
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    for got, want in zip(model.parameters(), expect):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert {"arch_loss", "train_loss", "entropy_normal", "entropy_reduce", "stable_steps"} <= set(metrics)


def test_joint_mode_feeds_one_training_backward_to_both():
    sp, model, strat, opt, batches = tiny_setup("vimnas", arch_lr=0.025, mode="joint")
    ctx = context(model, opt, batches, step=0, seed=0)
    loss, _, _ = forward_loss(ctx, batches[0], strat.sample(0, 0, 0))
    g_phi = torch.autograd.grad(loss, list(strat.parameters()))
    copies = [p.detach().clone().requires_grad_() for p in strat.parameters()]
    ref = torch.optim.Adam(copies, lr=0.025, betas=(0.5, 0.999), weight_decay=1e-3)
    for c, g in zip(copies, g_phi):
        c.grad = g.clone()
    ref.step()
    strat.step(ctx, batches[0])
    for got, want in zip(strat.parameters(), copies):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_fixed_prior_is_kept_and_saved_resampled_prior_depends_on_the_step():
    fixed = _vimnas(prior="fixed")
    assert fixed.step_priors(0, 1) is None
    state = fixed.state_dict()
    assert "prior_normal" in state and "prior_reduce" in state
    other = _vimnas(prior="fixed")
    assert not torch.equal(other.prior("normal"), fixed.prior("normal"))
    other.load_state_dict(state)
    torch.testing.assert_close(other.mean_logits()["normal"], fixed.mean_logits()["normal"])

    fresh = _vimnas(prior="resample")
    a, b = fresh.step_priors(0, 1), fresh.step_priors(0, 2)
    assert a["normal"].shape == (3, 14, 8)
    assert not torch.equal(a["normal"], b["normal"])
    assert torch.equal(a["normal"], fresh.step_priors(0, 1)["normal"]), "a function of (seed, step)"
    assert not torch.allclose(fresh.sample(0, 1, 0, a)["normal"], fresh.sample(0, 1, 0, b)["normal"])
    w = fresh.expected_weights()
    torch.testing.assert_close(w["normal"].sum(-1), torch.ones(14))


def test_expected_weights_match_the_gaussian_integral_and_drive_derivation():
    """Two ops: E[softmax(mu + eps)]_0 = E[sigmoid(mu0 - mu1 + sqrt(2) z)], by Gauss-Hermite."""
    strat = _vimnas("darts-s2", mc_samples=20000)
    mu = strat.mean_logits()["normal"].detach().double().numpy()
    z, wq = np.polynomial.hermite_e.hermegauss(80)
    d = mu[:, 0] - mu[:, 1]
    exact = (1 / (1 + np.exp(-(d[:, None] + np.sqrt(2) * z[None])))) @ wq / wq.sum()
    got = strat.expected_weights()["normal"][:, 0].double().numpy()
    np.testing.assert_allclose(got, exact, atol=0.01)
    # derivation uses these expected weights (op probabilities times the edge weights)
    w = strat.expected_weights()
    assert strat.derive() == strat.space.derive(w)
    strat8 = _vimnas("darts", mc_samples=64)
    assert strat8.derive() == strat8.space.derive(strat8.expected_weights())


def test_early_stop_once_the_genotype_is_stable(tmp_path):
    out = tmp_path / "run"
    rc = main(["search", "vimnas_fashionmnist", "data.name=generated", "data.generated.image_size=16",
               "data.generated.channels=1", "data.generated.num_classes=4", "data.generated.num_samples=64",
               "data.subset=0", "data.batch_size=4", "space.init_channels=4", "space.layers=3",
               "space.partial_channels=1", "steps_per_epoch=10", "optim.epochs=1", "val_batches=1",
               "strategy.arch_lr=0.0", "strategy.arch_weight_decay=0.0", "strategy.stop_after=3",
               "history_every=1", "--out", str(out), "--no-progress"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    # a frozen generator keeps its genotype: tracked after steps 0..3, stable for 3 steps
    assert summary["stopped_early"] and summary["steps"] == 4
    assert summary["genotype_stable_since_step"] == 0 and summary["genotype_stable_steps"] == 3
    hist = [json.loads(x) for x in (out / "arch_history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist] == [0, 1, 2, 3, 4]
    # plot draws the anytime weights, their entropy and the cells
    assert main(["plot", str(out), "--formats", "png,svg"]) == 0
    for stem in ("arch_weights_normal", "arch_weights_reduce", "entropy", "cells"):
        for fmt in ("png", "svg"):
            assert (out / "figures" / f"{stem}.{fmt}").stat().st_size > 1000
    ent = json.loads((out / "figures" / "entropy.json").read_text())
    assert set(ent) == {"normal", "reduce"} and 0 < ent["normal"]["end"] <= np.log(8)


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"strategy.prior: invalid value 'sometimes', expected one of \[fixed"):
        load_config(None, ["strategy.name=vimnas", "strategy.prior=sometimes"])
    with pytest.raises(ConfigError, match=r"strategy.mode: invalid value 'trilevel'"):
        load_config(None, ["strategy.name=vimnas-s", "strategy.mode=trilevel"])
    assert main(["plot", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_last_relu_option_drops_only_the_output_relu():
    strat = _vimnas(name="vimnas-l", last_relu=False)
    crbs = list(strat.nets["normal"].layers)
    assert [type(c[1]) for c in crbs] == [nn.ReLU] * 4 + [nn.Identity]
    mu = strat.mean_logits()["normal"]
    assert mu.shape == (14, 8) and (mu.max(-1).values > mu.min(-1).values).all()


def test_edge_norm_option_normalises_each_row_and_keeps_one_gain():
    strat = _vimnas(space="darts-s2", last_relu=False)
    net = strat.nets["normal"]
    mu = strat.mean_logits()["normal"]  # (14, 2)
    x = net.layers[-1][0](net.layers[0](strat.prior("normal").unsqueeze(0)))[0, 0]  # before the norm
    norm = net.layers[-1][2]
    assert norm.weight.shape == norm.bias.shape == (1,)
    with torch.no_grad():
        norm.weight.fill_(2.0)
        norm.bias.fill_(0.5)
    by_hand = (x - x.mean(-1, keepdim=True)) / (x.var(-1, unbiased=False, keepdim=True) + norm.eps).sqrt()
    torch.testing.assert_close(strat.mean_logits()["normal"], 2 * by_hand + 0.5)
    torch.testing.assert_close(mu, by_hand)
    with pytest.raises(Exception, match="last_norm must be one of"):
        _vimnas(last_norm="layer")
