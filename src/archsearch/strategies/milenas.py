"""MiLeNAS (He et al., 2020): mixed-level optimisation of L_tr + lambda * L_val.

order 1 (the paper's update, both gradients at the current (w, alpha)):
    w     <- w - eta_w dL_tr/dw
    alpha <- alpha - eta_a (dL_tr/dalpha + lambda dL_val/dalpha)
One backward of L_tr on the train batch gives both dL_tr/dw and dL_tr/dalpha, so an iteration
costs two passes instead of the reference code's three.
order 2 (supplement B): both terms are unrolled hypergradients through the same virtual step;
lambda multiplies the validation term in both orders (the supplement's formula puts it on the
train term, which only differs for lambda != 1; we keep one objective, L_tr + lambda L_val).
Deliberately not reproduced from the reference code: clipping the alphas instead of the weights,
and alphas leaking into the second-order virtual step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from archsearch.config import opt
from archsearch.strategies.base import STRATEGIES, StepContext, check_finite, forward_loss, weight_step
from archsearch.strategies.bilevel import unrolled_gradient, virtual_step
from archsearch.strategies.darts import AlphaStrategy, DartsConfig


@dataclass
class MilenasConfig(DartsConfig):
    name: str = "milenas"
    lam: float = opt(1.0, "lambda of the mixed-level objective L_tr + lambda L_val", low=0.0)


@STRATEGIES.register("milenas", config=MilenasConfig)
class MiLeNAS(AlphaStrategy):
    name = "milenas"

    def __init__(self, space, cfg):
        super().__init__(space, cfg)
        self.optimizer = self.make_arch_optimizer()

    def step(self, ctx: StepContext, train):
        if not self.arch_active(ctx):
            return weight_step(ctx, train, self.weights())
        if self.cfg.order == 2:
            val = ctx.next_val()
            w_prime = virtual_step(ctx, train, self.weights())
            g_tr = unrolled_gradient(ctx, self, train, train, w_prime)
            g_val = unrolled_gradient(ctx, self, train, val, w_prime)
            self.apply_arch_grads([a + self.cfg.lam * b for a, b in zip(g_tr, g_val)], ctx.step)
            return weight_step(ctx, train, self.weights())

        alphas = list(self.parameters())
        ctx.optimizer.zero_grad(set_to_none=True)
        loss_tr, out, targets = forward_loss(ctx, train, self.weights())
        check_finite(loss_tr, "training loss", ctx.step)
        loss_tr.backward()  # fills w.grad (for the weight step) and alpha.grad
        g_tr = [a.grad.detach().clone() for a in alphas]
        for a in alphas:
            a.grad = None
        val = ctx.next_val()
        loss_val, _, _ = forward_loss(ctx, val, self.weights())
        check_finite(loss_val, "architecture loss", ctx.step)
        g_val = torch.autograd.grad(loss_val, alphas)
        metrics = weight_step(ctx, train, None, loss_and_out=(loss_tr, out, targets))
        self.apply_arch_grads([a + self.cfg.lam * b for a, b in zip(g_tr, g_val)], ctx.step)
        metrics["arch_loss"] = loss_val.item()
        return metrics
