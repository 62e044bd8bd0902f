"""Random search with weight sharing (Li & Talwalkar, 2019), the baseline at equal budget.

Every step trains the supernet on one uniformly sampled architecture (one-hot weights, so the
fast supernet runs a single path). When the budget is spent, the selection rule picks the result:
by default `sampled`, i.e. `selection.samples` fresh random architectures scored with the shared
weights on `selection.batches` validation batches, the best returned; `perturbation` runs DARTS-PT
on uniform weights (strategies/selection.py).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from archsearch.config import StrategyConfig
from archsearch.strategies.base import STRATEGIES, SearchStrategy, StepContext, step_rng, weight_step
from archsearch.strategies.selection import Rule, SelectionConfig


@dataclass
class RandomConfig(StrategyConfig):
    name: str = "random"
    selection: SelectionConfig = field(default_factory=lambda: SelectionConfig(rule=Rule.sampled))


@STRATEGIES.register("random", config=RandomConfig)
class RandomSearch(SearchStrategy):
    name = "random"

    def __init__(self, space, cfg):
        super().__init__(space, cfg)
        self.best = None  # the architecture after finalize

    def step(self, ctx: StepContext, train):
        arch = self.space.sample(step_rng(ctx))
        device = train[0].device
        return weight_step(ctx, train, {k: v.to(device) for k, v in self.space.one_hot(arch).items()})

    def selection_weights(self) -> dict[str, torch.Tensor]:
        """Uniform weights: every path was trained equally often (DARTS-PT's untrained-alpha baseline)."""
        return {k: torch.full(shape, 1.0 / shape[-1]) for k, shape in self.space.arch_shapes().items()}

    def draw(self, rng: random.Random):
        return self.space.sample(rng)

    def finalize(self, ctx: StepContext):
        self.best, self.selection_record = self.select(ctx, self.cfg.selection)
        return self.best

    def derive(self):
        return self.best
