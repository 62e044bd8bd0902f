"""The strategy axis: what produces the architecture weights and how one search step updates them.

A strategy owns the architecture parameters (alphas, betas, a generator network ...) as an
nn.Module, their optimizer, and the update rule of one iteration, weight step included, so that
methods with unusual weight steps (fair sampling, single paths) fit the same loop. It sees the
supernet, the objective and batches, never the dataset or the task.
"""
from __future__ import annotations

import random
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

import torch
from torch import nn
from torch.func import functional_call

from archsearch.collectives import average_, average_scalar
from archsearch.config import StrategyConfig, opt
from archsearch.errors import ConfigError, DivergenceError
from archsearch.registry import Registry
from archsearch.seeds import step_seed
from archsearch.strategies.selection import Rule, Scorer, Selection, SelectionConfig, draw_from_weights, select

STRATEGIES: Registry["SearchStrategy"] = Registry("strategy")
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class ArchOptimConfig(StrategyConfig):
    """Options of strategies that train architecture parameters with Adam."""

    arch_lr: float = opt(3e-4, "Adam learning rate of the architecture parameters", low=0.0)
    arch_betas: List[float] = opt([0.5, 0.999], "Adam betas")
    arch_weight_decay: float = opt(1e-3, "Adam (L2) weight decay", low=0.0)
    arch_grad_clip: float = opt(0.0, "gradient-norm clip; 0 = off (PC-DARTS ImageNet clips at 5)", low=0.0)

    def check(self, where: str) -> None:
        if len(self.arch_betas) != 2 or not all(0.0 <= b < 1.0 for b in self.arch_betas):
            raise ConfigError(f"{where}.arch_betas must be two numbers in [0, 1), got {list(self.arch_betas)}")


@dataclass
class GradientConfig(ArchOptimConfig):
    """Strategies that may hold the architecture fixed while the supernet weights warm up."""

    arch_freeze_epochs: float = opt(0.0, "weight-only epochs before the first architecture update", low=0.0)
    selection: SelectionConfig = field(default_factory=SelectionConfig)


@dataclass
class StepContext:
    model: nn.Module  # the supernet
    objective: Any
    optimizer: torch.optim.SGD  # the weight optimizer
    lr: float  # this epoch's weight learning rate (xi of the unrolled step)
    grad_clip: float
    step: int  # global step index
    epoch: float  # fractional epoch: epoch + step_in_epoch / steps_per_epoch
    seed: int
    next_val: Callable[[], Batch]  # draws the next architecture batch (only when needed)
    next_train: Optional[Callable[[], Batch]] = None  # the next weight batch (selection's BN and tuning)
    arch_update: Optional[bool] = None  # force the architecture update on/off (benchmarks); None: the schedule


def check_finite(loss: torch.Tensor, what: str, step: int) -> None:
    if not torch.isfinite(loss).all():
        raise DivergenceError(
            f"{what} became {loss.item()} at step {step}; lower the learning rates or check the data"
        )


DARTS_SPACES = ("darts", "darts-s1", "darts-s2", "darts-s3", "darts-s4")


class SearchStrategy(nn.Module, metaclass=ABCMeta):
    name: str = "?"
    spaces: Optional[tuple[str, ...]] = None  # the search spaces it works on; None: any

    def __init__(self, space, cfg):
        super().__init__()
        self.space = space
        self.cfg = cfg
        self.optimizer: Optional[torch.optim.Optimizer] = None  # created by subclasses

    # -- what subclasses provide --------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        """Architecture weights for the supernet, differentiable w.r.t. the parameters.

        Empty for strategies without continuous weights (random search).
        """
        return {}

    def expected_weights(self) -> dict[str, torch.Tensor]:
        """Detached weights to derive from and to record in the history."""
        with torch.no_grad():
            return {k: v.detach() for k, v in self.weights().items()}

    @abstractmethod
    def step(self, ctx: StepContext, train: Batch) -> dict[str, float]:
        """One search iteration on a train batch (draw validation batches with ctx.next_val)."""

    def weight_epochs(self, total: int) -> int:
        """Epochs the weight learning-rate schedule spans (all of them unless a phase ends early)."""
        return total

    def derive(self):
        weights = self.expected_weights()
        return self.space.derive(weights) if weights else None

    def selection_weights(self) -> dict[str, torch.Tensor]:
        """The weights the selection rules read (strategies/selection.py): the expected ones."""
        return self.expected_weights()

    def draw(self, rng: random.Random):
        """An architecture drawn from the learned distribution (the `sampled` selection rule)."""
        return draw_from_weights(self.space, self.selection_weights(), rng)

    def select(self, ctx: StepContext, cfg: SelectionConfig):
        """The architecture rule `cfg` selects on the current supernet, and its record. Draws
        `cfg.batches` validation batches (and training batches for BN recomputation or tuning)."""
        val = [ctx.next_val() for _ in range(cfg.batches)]
        train = [ctx.next_train() for _ in range(cfg.bn_batches)] if cfg.bn == "recompute" else []
        scorer = Scorer(ctx.model, ctx.objective, val, train, cfg.bn, reduce=average_scalar)

        def tune(weights, steps):
            for _ in range(steps):
                weight_step(ctx, ctx.next_train(), weights)

        sel = Selection(self, scorer, cfg, step_rng(ctx, salt=1), tune if ctx.next_train else None)
        return select(sel)

    def should_stop(self) -> bool:
        """True once the search has converged by the strategy's own criterion (ends the run)."""
        return False

    def report(self) -> dict:
        """Strategy-specific facts for summary.json."""
        return {}

    def finalize(self, ctx: StepContext):
        """The architecture this search returns once its budget is spent: the derived one, or what the
        configured selection rule picks (`strategy.selection`)."""
        cfg = getattr(self.cfg, "selection", None)
        if cfg is None or (cfg.rule == Rule.argmax and not cfg.skip_cap):
            return self.derive()
        arch, self.selection_record = self.select(ctx, cfg)
        return arch

    # -- shared pieces ------------------------------------------------------------------------
    def arch_start_epoch(self) -> float:
        """The (fractional) epoch of the first architecture update."""
        return 0.0

    def arch_active(self, ctx: StepContext) -> bool:
        return ctx.epoch >= self.arch_start_epoch() if ctx.arch_update is None else ctx.arch_update

    def make_arch_optimizer(self) -> torch.optim.Optimizer:
        c = self.cfg
        return torch.optim.Adam(
            self.parameters(), lr=c.arch_lr, betas=tuple(c.arch_betas), weight_decay=c.arch_weight_decay
        )

    def apply_arch_grads(self, grads: list[torch.Tensor], step: int, params: Optional[list] = None) -> None:
        """Average the architecture gradients over ranks, check, clip and take one optimizer step.

        The one place an architecture update happens, so every strategy stays identical across
        torchrun ranks; `params` defaults to all of the strategy's parameters.
        """
        params = list(self.parameters()) if params is None else params
        grads = average_([g.detach().clone() for g in grads])  # the global batch's gradient on every rank
        for p, g in zip(params, grads):
            check_finite(g, "architecture gradient", step)
            p.grad = g
        if self.cfg.arch_grad_clip > 0:
            nn.utils.clip_grad_norm_(params, self.cfg.arch_grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def forward_loss(ctx: StepContext, batch: Batch, weights, params: Optional[dict] = None):
    """Objective loss of the supernet on a batch, optionally with substituted weight tensors.

    With substituted (virtual) weights the forward runs on throw-away copies of the buffers: a
    network at weights it never holds must not move the live batch-norm running statistics (the
    reference code evaluates w' on a separate model copy, quark0/darts cnn/architect.py).
    """
    inputs, targets = ctx.objective.prepare(*batch)
    if params is None:
        out = ctx.model(inputs, weights)
    else:
        scratch = {n: b.clone() for n, b in ctx.model.named_buffers()}
        out = functional_call(ctx.model, {**scratch, **params}, (inputs, weights), strict=False)
    return ctx.objective.loss(out, targets), out, targets


def weight_step(ctx: StepContext, batch: Batch, weights, loss_and_out=None) -> dict[str, float]:
    """One SGD step on the supernet weights (architecture weights held fixed)."""
    opt = ctx.optimizer
    if loss_and_out is None:
        opt.zero_grad(set_to_none=True)
        weights = {k: v.detach() for k, v in weights.items()}
        loss, out, targets = forward_loss(ctx, batch, weights)
        check_finite(loss, "training loss", ctx.step)
        loss.backward()
    else:  # the caller already back-propagated this loss into the weights
        loss, out, targets = loss_and_out
    params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
    average_([p.grad for p in params])
    if ctx.grad_clip > 0:
        nn.utils.clip_grad_norm_(params, ctx.grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    metrics = {"train_loss": loss.item()}  # this rank's slice; the engine averages logged metrics
    metrics.update({f"train_{k}": v for k, v in ctx.objective.metrics(out.detach(), targets).items()})
    return metrics


def step_rng(ctx: StepContext, salt: int = 0) -> random.Random:
    """A Python RNG that depends only on (seed, step): sampling survives resume exactly."""
    return random.Random(step_seed(ctx.seed, ctx.step, salt))


def check_pair(strategy: str, space: str) -> None:
    """Refuse a strategy on a space it does not declare (one line, before anything is built)."""
    spaces = getattr(STRATEGIES.get(strategy), "spaces", None)
    if spaces is not None and space not in spaces:
        raise ConfigError(f"strategy {strategy!r} does not search space {space!r}; it searches {', '.join(spaces)}")


def create_strategy(cfg, space) -> SearchStrategy:
    check_pair(cfg.name, space.name)
    return STRATEGIES.create(cfg.name, space, cfg)


def list_strategies() -> list[str]:
    return STRATEGIES.names()
