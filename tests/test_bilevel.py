"""Second-order architecture gradients against exact autograd on a tiny supernet (float64).

The finite-difference radius is small here (1e-5 instead of the papers' 0.01): on a network this
tiny, BN over 2x2 maps and max-pool kinks make the loss too rough for a 0.01 step, and the point
of these tests is the formula, not the step size.
"""
import copy

import pytest
import torch
from helpers import context, tiny_setup

from archsearch.strategies.base import forward_loss
from archsearch.strategies.bilevel import fd_hvp, unrolled_gradient, virtual_step


def _warm_momentum(model, opt, ctx, batch, strat):
    """One real SGD step so the virtual step has a momentum buffer to use."""
    loss, _, _ = forward_loss(ctx, batch, {k: v.detach() for k, v in strat.weights().items()})
    opt.zero_grad()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def exact_unrolled(ctx, strat, train, outer):
    """d/dalpha L_outer(w'(alpha), alpha) with w' = w - xi (mu m + dL_train/dw + wd w), by autograd."""
    model, opt = ctx.model, ctx.optimizer
    params = dict(model.named_parameters())
    loss_tr, _, _ = forward_loss(ctx, train, strat.weights())
    g = torch.autograd.grad(loss_tr, list(params.values()), create_graph=True)
    group = opt.param_groups[0]
    w_prime = {}
    for (n, p), gi in zip(params.items(), g):
        buf = opt.state[p]["momentum_buffer"]
        w_prime[n] = p - ctx.lr * (group["momentum"] * buf + gi + group["weight_decay"] * p)
    loss_out, _, _ = forward_loss(ctx, outer, strat.weights(), w_prime)
    return torch.autograd.grad(loss_out, list(strat.parameters()))


def _rel_err(a, b):
    a = torch.cat([x.flatten() for x in a])
    b = torch.cat([x.flatten() for x in b])
    return ((a - b).norm() / b.norm()).item()


def test_darts_second_order_matches_exact_hypergradient():
    sp, model, strat, opt, batches = tiny_setup("darts", order=2, fd_radius=1e-5)
    ctx = context(model, opt, batches)
    _warm_momentum(model, opt, ctx, batches[5], strat)
    train, val = batches[0], batches[1]
    exact = exact_unrolled(ctx, strat, train, val)
    w_prime = virtual_step(ctx, train, strat.weights())
    fd = unrolled_gradient(ctx, strat, train, val, w_prime)
    assert _rel_err(fd, exact) < 1e-4
    # and the unrolled term matters: the first-order gradient is measurably different
    first, _, _ = forward_loss(ctx, val, strat.weights())
    g1 = torch.autograd.grad(first, list(strat.parameters()))
    assert _rel_err(g1, exact) > 10 * _rel_err(fd, exact)


def test_fd_hvp_matches_double_backward_and_restores_weights():
    sp, model, strat, opt, batches = tiny_setup("darts", order=2, fd_radius=1e-5)
    ctx = context(model, opt, batches)
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    v = [torch.randn_like(p) for p in params]
    hvp = fd_hvp(ctx, batches[0], strat, v, r=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(before, params)), "weights not restored bit-exactly"
    loss, _, _ = forward_loss(ctx, batches[0], strat.weights())
    alphas = list(strat.parameters())
    g_w = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((g * vi).sum() for g, vi in zip(g_w, v))
    exact = torch.autograd.grad(dot, alphas)
    assert _rel_err(hvp, exact) < 1e-6


def _reference_copy(model, strat, opt, batches):
    """An independent copy (weights, alphas, momentum) to compute the expected gradient on."""
    ref_model, ref_strat = copy.deepcopy(model), copy.deepcopy(strat)
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    ref_opt.load_state_dict(opt.state_dict())
    return context(ref_model, ref_opt, batches), ref_strat


def test_darts2_strategy_step_applies_the_unrolled_gradient(monkeypatch):
    sp, model, strat, opt, batches = tiny_setup("darts", order=2, fd_radius=1e-5)
    ctx = context(model, opt, batches)
    _warm_momentum(model, opt, ctx, batches[5], strat)
    ref_ctx, ref_strat = _reference_copy(model, strat, opt, batches)
    exact = exact_unrolled(ref_ctx, ref_strat, batches[0], batches[3])  # ctx.next_val gives batches[3]
    seen = {}
    original = type(strat).apply_arch_grads

    def spy(self, grads, step):
        seen["grads"] = [g.detach().clone() for g in grads]
        return original(self, grads, step)

    monkeypatch.setattr(type(strat), "apply_arch_grads", spy)
    strat.step(ctx, batches[0])
    assert _rel_err(seen["grads"], exact) < 5e-3  # finite differences cross a few ReLU/max kinks


def test_milenas_second_order_gradient_is_train_plus_lambda_val(monkeypatch):
    lam = 0.5
    sp, model, strat, opt, batches = tiny_setup("milenas", order=2, lam=lam, fd_radius=1e-5)
    ctx = context(model, opt, batches)
    _warm_momentum(model, opt, ctx, batches[5], strat)
    ref_ctx, ref_strat = _reference_copy(model, strat, opt, batches)
    g_tr = exact_unrolled(ref_ctx, ref_strat, batches[0], batches[0])
    g_val = exact_unrolled(ref_ctx, ref_strat, batches[0], batches[3])
    expected = [a + lam * b for a, b in zip(g_tr, g_val)]
    seen = {}
    original = type(strat).apply_arch_grads
    monkeypatch.setattr(type(strat), "apply_arch_grads",
                        lambda self, grads, step: (seen.setdefault("g", [g.clone() for g in grads]),
                                                   original(self, grads, step)))
    strat.step(ctx, batches[0])
    assert _rel_err(seen["g"], expected) < 5e-3


def _bn_buffers(model):
    return {n: b.detach().clone() for n, b in model.named_buffers()}


@pytest.mark.parametrize("strategy,train_forwards", [("darts", 3), ("milenas", 5)])
def test_second_order_step_moves_bn_statistics_only_with_real_forwards(strategy, train_forwards):
    """The forwards at the virtual weights w' leave the live running statistics alone.

    What is left are the forwards on the live module: the virtual step's gradient and the
    finite-difference products (DARTS 1 + 2, MiLeNAS 1 + 2 + 2, all on the train batch with the
    alphas before the step; at a 1e-9 radius their weights equal w to rounding), then the
    weight step with the updated alphas. Replaying exactly those plain forwards on a copy of the
    network must give the same statistics, as the reference code's copy-based w' does.
    """
    sp, model, strat, opt, batches = tiny_setup(strategy, order=2, fd_radius=1e-9)
    ctx = context(model, opt, batches)
    _warm_momentum(model, opt, ctx, batches[5], strat)
    replay = copy.deepcopy(model)
    before = {k: v.detach().clone() for k, v in strat.weights().items()}
    strat.step(ctx, batches[0])
    after = {k: v.detach().clone() for k, v in strat.weights().items()}
    with torch.no_grad():
        for _ in range(train_forwards):
            replay(batches[0][0], before)
        replay(batches[0][0], after)
    got, want = _bn_buffers(model), _bn_buffers(replay)
    assert got.keys() == want.keys() and any(k.endswith("num_batches_tracked") for k in got)
    for k in got:
        torch.testing.assert_close(got[k], want[k], rtol=1e-7, atol=1e-9, msg=k)
