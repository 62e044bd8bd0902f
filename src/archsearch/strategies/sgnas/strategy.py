"""SGNAS (Huang & Chu, 2021): fair supernet training, then an architecture generator.

Two phases in one run, split by `strategy.supernet_epochs` (the code's `warmup_epochs`):

(a) supernet: each step runs strictly fair single paths on one batch (spaces/mobile/fair.py),
    sums their gradients and makes one weight update.
(b) generator: the supernet is frozen (eval mode, no gradients, its optimizer never stepped).
    Per step a FLOPs target T is drawn, the generator maps (prior, T) to logits, a soft
    Gumbel-softmax sample p (temperature tau * decay^epoch) mixes the supernet's candidates on a
    held-out batch, and the generator takes one Adam step on
        CE_ls(supernet(x; p), y) + lambda * rho^[F > T] * (F(p) - T)^2  (0 inside the dead zone)
    with F(p) from the lookup table.

Generation is one noiseless forward pass and a per-sub-block argmax (`generate`). After every
generator step the argmax architectures for the evaluation targets are priced and the generator
with the lowest summed FLOPs loss so far is kept (the code's `path_to_save_generator`); it is the
one `generate` and the final result use unless the last one is asked for.
"""
from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from scipy import stats

from archsearch.config import opt
from archsearch.errors import ConfigError
from archsearch.seeds import step_seed
from archsearch.spaces.mobile.arch import MobileArch, sample_arch
from archsearch.spaces.mobile.supernet import init_weights
from archsearch.strategies.base import (
    STRATEGIES,
    ArchOptimConfig,
    SearchStrategy,
    StepContext,
    check_finite,
    forward_loss,
    step_rng,
    weight_step,
)
from archsearch.strategies.sgnas.generator import ArchitectureGenerator

PRIOR_TRIES = 200_000


@dataclass
class SgnasConfig(ArchOptimConfig):
    """SGNAS (docs/methods/sgnas.md §3-5): the supernet phase, then the generator (arch_* options)."""

    name: str = "sgnas"
    supernet_epochs: float = opt(0.0, "epochs of strictly fair supernet training before the generator phase",
                                 low=0.0)
    fair_passes: int = opt(0, "paths per supernet step; 0 = one per expansion rate (strict); the code: 4", low=0)
    sum_passes: bool = opt(True, "gradients of the passes summed (the code) rather than averaged")
    low_flops: float = opt(270.0, "target range in MFLOPs (conv mult-adds of the no-SE network)", above=0.0)
    high_flops: float = opt(450.0, above=0.0)
    target_step: float = opt(5.0, "training targets: low, low+step, ... < high, shuffled per cycle", above=0.0)
    target_jitter: float = opt(0.5, "plus uniform jitter in [-jitter, jitter)", low=0.0)
    hc_targets: int = opt(1, "targets whose FLOPs loss is averaged per step (1 = the code; extras skip the CE)",
                          low=1)
    eval_step: float = opt(10.0, "evaluation targets low, low+step, ... < high; the best generator is kept",
                           above=0.0)
    hc_weight: float = opt(3e-4, "lambda of lambda * (F - T)^2", low=0.0)
    hc_dead_zone: float = opt(0.1, "no penalty within +-dead zone (the code); 0 = plain squared error", low=0.0)
    hc_over_factor: float = opt(1.2, "extra factor when F > T (the code); 1 = symmetric", above=0.0)
    tau: float = opt(5.0, "Gumbel-softmax temperature of the first generator epoch", above=0.0)
    tau_decay: float = opt(0.95, "per generator epoch", above=0.0)
    tau_every: float = opt(1.0, "length of a generator epoch in engine epochs", above=0.0)
    hc_dim: int = opt(10, "channels of the broadcast target map", low=1)
    hidden: int = opt(32, "generator width", low=1)
    pool_size: int = opt(1, "priors in the prior pool", low=1)
    prior_tolerance: float = opt(1.0, "MFLOPs: a prior lies this close to its key", above=0.0)
    prior_seed: int = 0

    def check(self, where: str) -> None:
        super().check(where)
        if not self.low_flops < self.high_flops:
            raise ConfigError(f"{where}.low_flops must be below high_flops ({self.low_flops} >= {self.high_flops})")


def hc_loss(flops: torch.Tensor, target: float, weight: float, dead_zone: float, over: float) -> torch.Tensor:
    """lambda (F - T)^2, times `over` when F > T + dead zone, zero within the dead zone."""
    d = flops - target
    scale = torch.where(d > dead_zone, over, torch.where(d < -dead_zone, 1.0, 0.0)).to(d.dtype)
    return weight * scale * d * d


def target_pool(low: float, high: float, step: float) -> list[float]:
    n = max(1, math.ceil((high - low) / step - 1e-9))
    return [low + i * step for i in range(n)]


@STRATEGIES.register("sgnas", config=SgnasConfig)
class Sgnas(SearchStrategy):
    name = "sgnas"
    spaces = ("mobile-unified",)

    def __init__(self, space, cfg):
        super().__init__(space, cfg)
        c = cfg
        self.c = c
        self.generator = ArchitectureGenerator(c.hc_dim, c.hidden)
        init_weights(self.generator)
        self.flops = space.flops_table()
        _rows, s, k1 = space.arch_shapes()["arch"]
        mask = torch.zeros(s, k1, dtype=torch.bool)
        for b, ok in enumerate(space.skip_allowed()):
            mask[b, -1] = not ok
        self.register_buffer("mask", mask, persistent=False)
        keys, priors = self._prior_pool()
        self.register_buffer("prior_keys", keys)
        self.register_buffer("priors", priors)
        self.best_generator = copy.deepcopy(self.generator).requires_grad_(False)
        self.register_buffer("best_hc", torch.tensor(math.inf, dtype=torch.float64))
        self.register_buffer("best_step", torch.tensor(-1))
        self.optimizer = torch.optim.Adam(self.generator.parameters(), lr=cfg.arch_lr, betas=tuple(cfg.arch_betas),
                                          weight_decay=cfg.arch_weight_decay)

    # -- prior pool (docs/methods/sgnas.md §4.2) -----------------------------------------------
    def _prior_pool(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`pool_size` canonical one-hot architectures whose FLOPs lie within tolerance of keys
        evenly spaced inside (low, high); found by rejection sampling from a fixed seed."""
        c, sp = self.c, self.space
        gap = (c.high_flops - c.low_flops) / (c.pool_size + 1)
        keys = [c.low_flops + gap * (i + 1) for i in range(c.pool_size)]
        rng = random.Random(c.prior_seed)
        priors = []
        for key in keys:
            for _ in range(PRIOR_TRIES):
                arch = sample_arch(sp.layout, sp.min_expansion, True, rng)
                if abs(self.flops.discrete(arch) - key) <= c.prior_tolerance:
                    break
            else:
                raise ConfigError(f"no random architecture within {c.prior_tolerance} MFLOPs of the prior key "
                                  f"{key:.3f}; raise strategy.prior_tolerance or move the target range")
            priors.append(sp.one_hot(arch)["arch"])
        return torch.tensor(keys, dtype=torch.float64), torch.stack(priors)

    # -- generation ---------------------------------------------------------------------------
    def logits(self, targets: torch.Tensor, generator=None) -> torch.Tensor:
        """Masked logits (N, L, S, K+1) for targets (N,) in MFLOPs."""
        generator = self.generator if generator is None else generator
        c = self.c
        targets = targets.to(self.prior_keys)
        nearest = (targets.unsqueeze(1) - self.prior_keys.unsqueeze(0)).abs().argmin(dim=1)
        prior = self.priors[nearest]
        n, rows, s, k1 = prior.shape
        t = ((targets - c.low_flops) / (c.high_flops - c.low_flops)).to(prior.dtype)
        out = generator(prior.reshape(n, rows, s * k1), t).view(n, rows, s, k1)
        return out.masked_fill(self.mask, -math.inf)

    @torch.no_grad()
    def generate(self, targets: list[float], best: bool = True) -> list[MobileArch]:
        """One forward pass for all targets, argmax per sub-block (no Gumbel noise), with the kept
        best generator (if one was evaluated yet) or the current one."""
        gen = self.best_generator if best and self.best_step >= 0 else self.generator
        logits = self.logits(torch.tensor(targets, dtype=torch.float64, device=self.prior_keys.device), gen)
        return [self.space.derive({"arch": lg}) for lg in logits]

    def eval_targets(self) -> list[float]:
        return target_pool(self.c.low_flops, self.c.high_flops, self.c.eval_step)

    @torch.no_grad()
    def evaluate(self, best: bool = False) -> dict:
        """FLOPs loss summed over the evaluation targets and the Kendall tau of achieved vs target."""
        c = self.c
        targets = self.eval_targets()
        flops = [self.flops.discrete(a) for a in self.generate(targets, best=best)]
        total = sum(hc_loss(torch.tensor(f), t, c.hc_weight, c.hc_dead_zone, c.hc_over_factor).item()
                    for f, t in zip(flops, targets))
        return {"eval_hc": total, "eval_kendall": _kendall(targets, flops),
                "eval_max_rel_error": max(abs(f - t) / t for f, t in zip(flops, targets))}

    def derive(self):
        return self.generate([self.mid_target])[0]

    @property
    def mid_target(self) -> float:
        return (self.c.low_flops + self.c.high_flops) / 2

    def expected_weights(self):
        """The architecture generated for the middle of the target range, as one-hot weights."""
        arch = self.generate([self.mid_target])[0]
        return {k: v.to(self.prior_keys.device) for k, v in self.space.one_hot(arch).items()}

    # -- schedule -----------------------------------------------------------------------------
    def arch_start_epoch(self) -> float:
        """The generator phase starts when the supernet phase ends."""
        return self.cfg.supernet_epochs

    def weight_epochs(self, total: int) -> int:
        """The weight learning rate follows its cosine over the supernet phase only."""
        return max(1, math.ceil(self.cfg.supernet_epochs))

    def tau(self, ctx: StepContext) -> float:
        epoch = math.floor(max(0.0, ctx.epoch - self.cfg.supernet_epochs) / self.c.tau_every + 1e-9)
        return self.c.tau * self.c.tau_decay ** epoch

    def target(self, ctx: StepContext) -> float:
        """Walk a shuffled pool of targets, reshuffled at each wrap, plus uniform jitter."""
        c = self.c
        pool = target_pool(c.low_flops, c.high_flops, c.target_step)
        cycle, pos = divmod(ctx.step, len(pool))
        order = list(range(len(pool)))
        random.Random(step_seed(ctx.seed, cycle, 5)).shuffle(order)
        return pool[order[pos]] + step_rng(ctx, salt=3).uniform(-c.target_jitter, c.target_jitter)

    # -- steps --------------------------------------------------------------------------------
    def step(self, ctx: StepContext, train):
        if self.arch_active(ctx):
            return self.generator_step(ctx)
        return self.supernet_step(ctx, train)

    def supernet_step(self, ctx: StepContext, train) -> dict[str, float]:
        model = ctx.model
        model.train()
        model.requires_grad_(True)
        paths = self.space.fair_paths(step_rng(ctx), self.c.fair_passes)
        ctx.optimizer.zero_grad(set_to_none=True)
        device = train[0].device
        total = 0.0
        for arch in paths:
            weights = {k: v.to(device) for k, v in self.space.one_hot(arch).items()}
            loss, out, targets = forward_loss(ctx, train, weights)
            check_finite(loss, "training loss", ctx.step)
            (loss if self.c.sum_passes else loss / len(paths)).backward()
            total += loss.item()
        metrics = weight_step(ctx, train, {}, loss_and_out=(torch.tensor(total / len(paths)), out, targets))
        metrics["passes"] = float(len(paths))
        return metrics

    def generator_step(self, ctx: StepContext) -> dict[str, float]:
        c = self.c
        model = ctx.model
        model.eval()
        model.requires_grad_(False)
        batch = ctx.next_val()
        rng = step_rng(ctx, salt=4)
        targets = [self.target(ctx)] + [rng.uniform(c.low_flops, c.high_flops) for _ in range(c.hc_targets - 1)]
        tau = self.tau(ctx)
        p = F.gumbel_softmax(self.logits(torch.tensor(targets, dtype=torch.float64)), tau=tau, hard=False, dim=-1)
        flops = [self.flops.soft(pi) for pi in p]
        hc = sum(hc_loss(f, t, c.hc_weight, c.hc_dead_zone, c.hc_over_factor) for f, t in zip(flops, targets))
        hc = hc / len(targets)
        ce, out, labels = forward_loss(ctx, batch, {"arch": p[0]})
        loss = ce + hc
        check_finite(loss, "generator loss", ctx.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = list(self.generator.parameters())
        self.apply_arch_grads([p.grad for p in params], ctx.step, params)
        ev = self.evaluate()
        if ev["eval_hc"] < self.best_hc.item():
            self.best_generator.load_state_dict(self.generator.state_dict())
            self.best_hc.fill_(ev["eval_hc"])
            self.best_step.fill_(ctx.step)
        metrics = {"gen_loss": loss.item(), "gen_ce": ce.item(), "gen_hc": hc.item(),
                   "gen_flops": flops[0].item(), "gen_target": targets[0], "tau": tau, **ev,
                   "best_eval_hc": self.best_hc.item()}
        metrics.update({f"gen_{k}": v for k, v in ctx.objective.metrics(out.detach(), labels).items()})
        return metrics


def _kendall(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b of targets vs generated FLOPs (0 when either side is constant)."""
    tau = stats.kendalltau(a, b).statistic
    return 0.0 if math.isnan(tau) else float(tau)
