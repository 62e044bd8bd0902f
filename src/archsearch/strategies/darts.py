"""DARTS (Liu et al., 2019): softmax-relaxed alphas, alternating architecture and weight steps.

order 1: the architecture gradient is dL_val/dalpha at the current weights.
order 2: the unrolled hypergradient through one virtual SGD step (bilevel.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from archsearch.config import opt
from archsearch.strategies.base import (
    DARTS_SPACES,
    STRATEGIES,
    GradientConfig,
    SearchStrategy,
    StepContext,
    check_finite,
    forward_loss,
    weight_step,
)
from archsearch.strategies.bilevel import unrolled_gradient, virtual_step


@dataclass
class DartsConfig(GradientConfig):
    name: str = "darts"
    order: int = opt(1, "1: gradient at the current weights; 2: through one virtual SGD step", low=1, high=2)
    fd_radius: float = opt(0.01, "2nd order: finite-difference step eps = fd_radius / ||v||", above=0.0)

    def cuda_graphs_refusal(self) -> Optional[str]:
        if self.order == 2:  # PC-DARTS and MiLeNAS inherit this
            return ("order=2 runs the supernet at virtual weights w' (functional_call), new tensors every "
                    "step, which a CUDA graph would re-record each step; use order=1 or cuda_graphs=false")
        return None


class AlphaStrategy(SearchStrategy):
    """Raw architecture logits, one (edges, ops) matrix per cell type, 1e-3 * N(0, 1) init."""

    spaces = DARTS_SPACES

    def __init__(self, space, cfg):
        super().__init__(space, cfg)
        self.alphas = nn.ParameterDict(
            {k: nn.Parameter(1e-3 * torch.randn(*shape)) for k, shape in space.arch_shapes().items()}
        )

    def weights(self):
        return {k: torch.softmax(a, dim=-1) for k, a in self.alphas.items()}

    def arch_start_epoch(self) -> float:
        return self.cfg.arch_freeze_epochs


@STRATEGIES.register("darts", config=DartsConfig)
class Darts(AlphaStrategy):
    name = "darts"

    def __init__(self, space, cfg):
        super().__init__(space, cfg)
        self.optimizer = self.make_arch_optimizer()

    def step(self, ctx: StepContext, train):
        metrics = {}
        if self.arch_active(ctx):
            val = ctx.next_val()
            if self.cfg.order == 1:
                loss, _, _ = forward_loss(ctx, val, self.weights())
                check_finite(loss, "architecture loss", ctx.step)
                grads = torch.autograd.grad(loss, list(self.parameters()))
                metrics["arch_loss"] = loss.item()
            else:
                w_prime = virtual_step(ctx, train, self.weights())
                grads = unrolled_gradient(ctx, self, train, val, w_prime)
            self.apply_arch_grads(grads, ctx.step)
        metrics.update(weight_step(ctx, train, self.weights()))
        return metrics
