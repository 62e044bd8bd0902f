"""Optimizers of the training recipes, by name (`optim.optimizer`)."""
from __future__ import annotations

import torch
from torch import nn

from archsearch.registry import Registry

OPTIMIZERS: Registry[torch.optim.Optimizer] = Registry("optimizer")


class RMSpropTF(torch.optim.Optimizer):
    """RMSprop as TensorFlow defines it, the optimizer of SGNAS's ImageNet recipe.

    It differs from `torch.optim.RMSprop` in three places that matter at eps 1e-3: the mean
    square starts at 1 (not 0), eps is added inside the square root (not after it), and the
    learning rate is folded into the momentum buffer, so a new lr scales only new gradients.
    Weight decay is the L2 term added to the gradient before it is squared.
    """

    def __init__(self, params, lr: float, alpha: float = 0.9, eps: float = 1e-3, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        if lr < 0 or not 0 <= alpha < 1 or eps <= 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"bad RMSpropTF settings: lr={lr} alpha={alpha} eps={eps} momentum={momentum} "
                             f"weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, alpha, momentum = group["lr"], group["alpha"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p)
                    if momentum > 0:
                        state["momentum_buffer"] = torch.zeros_like(p)
                square_avg = state["square_avg"]
                square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
                update = grad / (square_avg + group["eps"]).sqrt()
                if momentum > 0:
                    buf = state["momentum_buffer"]
                    buf.mul_(momentum).add_(update, alpha=lr)
                    p.sub_(buf)
                else:
                    p.sub_(update, alpha=lr)
        return loss


def param_groups(model: nn.Module, weight_decay: float, decay_1d: bool) -> list[dict]:
    """One group, or (decay_1d false) biases and norm parameters, the 1-D tensors, in a second
    group without weight decay, as SGNAS's (timm's) recipe excludes them."""
    params = [p for p in model.parameters() if p.requires_grad]
    if decay_1d:
        return [{"params": params, "weight_decay": weight_decay}]
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


@OPTIMIZERS.register("sgd")
def _sgd(groups: list[dict], o) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)


@OPTIMIZERS.register("rmsprop_tf")
def _rmsprop_tf(groups: list[dict], o) -> torch.optim.Optimizer:
    return RMSpropTF(groups, lr=o.lr, alpha=o.alpha, eps=o.eps, momentum=o.momentum)


def build_optimizer(model: nn.Module, o) -> torch.optim.Optimizer:
    """The optimizer `o.optimizer` (a TrainOptimConfig) names, over the model's parameters."""
    return OPTIMIZERS.create(o.optimizer, param_groups(model, o.weight_decay, o.decay_1d), o)
