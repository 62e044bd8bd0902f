"""Random search with weight sharing (Li & Talwalkar, 2019), the baseline at equal budget.

Every step trains the supernet on one uniformly sampled architecture (one-hot weights, so the
fast supernet runs a single path). When the budget is spent, `num_candidates` fresh random
architectures are scored with the shared weights on validation batches and the best is returned.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from archsearch.collectives import average_scalar
from archsearch.config import StrategyConfig, opt
from archsearch.strategies.base import STRATEGIES, SearchStrategy, StepContext, forward_loss, step_rng, weight_step


@dataclass
class RandomConfig(StrategyConfig):
    name: str = "random"
    num_candidates: int = opt(50, "random architectures scored with the shared weights at the end", low=1)
    candidate_batches: int = opt(4, "validation batches per candidate score", low=1)


@STRATEGIES.register("random", config=RandomConfig)
class RandomSearch(SearchStrategy):
    name = "random"

    def __init__(self, space, cfg):
        super().__init__(space, cfg)
        self.best = None  # (score, architecture) after finalize

    def _weights_of(self, arch, device):
        return {k: v.to(device) for k, v in self.space.one_hot(arch).items()}

    def step(self, ctx: StepContext, train):
        arch = self.space.sample(step_rng(ctx))
        device = train[0].device
        return weight_step(ctx, train, self._weights_of(arch, device))

    @torch.no_grad()
    def score(self, ctx: StepContext, arch, batches) -> float:
        """Mean of the objective's main metric (top-1 for supervised) of `arch` with the shared weights
        (minus the loss for an objective whose main metric is set-level, e.g. mIoU).

        BN uses batch statistics: the running averages mix every path trained.
        """
        ctx.model.train()
        total = 0.0
        for batch in batches:
            weights = self._weights_of(arch, batch[0].device)
            loss, out, targets = forward_loss(ctx, batch, weights)
            m = ctx.objective.metrics(out, targets)
            total += m.get(ctx.objective.main_metric, -loss.item())
        return average_scalar(total / len(batches))  # every rank ranks the candidates alike

    def finalize(self, ctx: StepContext):
        batches = [ctx.next_val() for _ in range(self.cfg.candidate_batches)]
        rng = step_rng(ctx, salt=1)
        scored = []
        for _ in range(self.cfg.num_candidates):
            arch = self.space.sample(rng)
            scored.append((self.score(ctx, arch, batches), arch))
        best = max(scored, key=lambda t: t[0])
        self.best = best
        return best[1]

    def derive(self):
        return self.best[1] if self.best else None
