"""Second-order (unrolled) architecture gradients shared by DARTS-2nd and MiLeNAS-2nd.

With w' = w - xi * (SGD update direction on the train batch), the hypergradient of an outer
loss L_out is  d/dalpha L_out(w', alpha) - xi * H_{alpha,w} L_train(w, alpha) v,  v = dL_out/dw'.
The Hessian-vector product is a central finite difference on the train batch around w
(docs/methods/darts.md §4.5). No new network is built: w' enters through torch.func.functional_call.
"""
from __future__ import annotations

import torch

from archsearch.collectives import average_
from archsearch.strategies.base import Batch, StepContext, check_finite, forward_loss


def weight_params(ctx: StepContext) -> dict[str, torch.Tensor]:
    return {n: p for n, p in ctx.model.named_parameters()}


def virtual_step(ctx: StepContext, train: Batch, weights) -> dict[str, torch.Tensor]:
    """w' = w - xi (mu m + g + lambda w): exactly the next SGD update, without clipping."""
    params = weight_params(ctx)
    detached = {k: v.detach() for k, v in weights.items()}
    loss, _, _ = forward_loss(ctx, train, detached)
    check_finite(loss, "training loss", ctx.step)
    grads = average_(list(torch.autograd.grad(loss, list(params.values()))))
    group = ctx.optimizer.param_groups[0]
    mu, wd = group["momentum"], group["weight_decay"]
    out = {}
    with torch.no_grad():
        for (name, p), g in zip(params.items(), grads):
            buf = ctx.optimizer.state.get(p, {}).get("momentum_buffer")
            d = g + wd * p
            if buf is not None:
                d = d + mu * buf
            out[name] = (p - ctx.lr * d).requires_grad_(True)
    return out


def outer_gradients(ctx, batch: Batch, strategy, w_prime) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(dL/dalpha, dL/dw') of the loss on `batch` at the virtual weights."""
    loss, _, _ = forward_loss(ctx, batch, strategy.weights(), w_prime)
    check_finite(loss, "architecture loss", ctx.step)
    alphas = list(strategy.parameters())
    grads = torch.autograd.grad(loss, alphas + list(w_prime.values()))
    return list(grads[: len(alphas)]), list(grads[len(alphas):])


def fd_hvp(ctx: StepContext, train: Batch, strategy, v: list[torch.Tensor], r: float = 1e-2) -> list[torch.Tensor]:
    """(d/dalpha L_train(w + eps v) - d/dalpha L_train(w - eps v)) / (2 eps), eps = r / ||v||."""
    alphas = list(strategy.parameters())
    norm = torch.sqrt(sum((x.double() ** 2).sum() for x in v)).item()
    if norm == 0.0:  # no direction: the product is zero, and eps would be infinite
        return [torch.zeros_like(a) for a in alphas]
    eps = r / norm
    params = list(weight_params(ctx).values())
    saved = [p.detach().clone() for p in params]

    def grad_at(sign: float):
        with torch.no_grad():
            for p, w0, d in zip(params, saved, v):
                p.copy_(w0 + sign * eps * d)
        loss, _, _ = forward_loss(ctx, train, strategy.weights())
        return torch.autograd.grad(loss, alphas)

    try:
        g_pos = grad_at(+1.0)
        g_neg = grad_at(-1.0)
    finally:
        with torch.no_grad():
            for p, w0 in zip(params, saved):
                p.copy_(w0)  # bit-exact restore
    return [(a - b) / (2 * eps) for a, b in zip(g_pos, g_neg)]


def unrolled_gradient(ctx, strategy, train: Batch, outer: Batch, w_prime) -> list[torch.Tensor]:
    """Hypergradient of the loss on `outer` through one virtual weight step on `train`."""
    d_alpha, v = outer_gradients(ctx, outer, strategy, w_prime)
    average_(v)  # the direction and eps must be the global ones; the alpha terms are averaged on apply
    hvp = fd_hvp(ctx, train, strategy, v, strategy.cfg.fd_radius)
    return [g - ctx.lr * h for g, h in zip(d_alpha, hvp)]
