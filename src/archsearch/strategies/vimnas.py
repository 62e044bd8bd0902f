"""VIM-NAS (Wang et al., ICCV 2021): architecture weights drawn from a learnt latent distribution.

Instead of free alphas, a small convolutional *architectural network* per cell type maps a random
prior of shape (3, edges, ops) to the mean mu of a unit-variance Gaussian over architecture
logits; every step samples A = mu + noise * eps (reparameterisation) and feeds softmax(A) to the
supernet where DARTS feeds softmax(alpha). Maximising the variational lower bound of the mutual
information between data and architecture is, for a classifier, minimising the loss of the
supernet under sampled architectures (Barber-Agakov), so the network is trained on that loss.

What follows the paper, what is ours (docs/methods/vimnas.md §5):
- [supp] the architectural networks of Table 1: stacks of CRB = conv, ReLU, batch norm
  (`vimnas-s`: CRB(3,1,3); `vimnas`: CRB(3,14,3) CRB(14,1,3); `vimnas-l`: CRB(3,14,3),
  3 x CRB(14,14,3), CRB(14,1,3)), 'same' padding, one output map of edges x ops; learning rate
  0.025 (0.001 in the ablation).
- [survey] A = mu + eps, eps ~ N(0, 1) by reparameterisation.
- [ours] the prior is N(0, I), drawn once and kept with the checkpoint (`prior=fixed`) or drawn
  afresh every step (`prior=resample`); the noise scale is an option (0: weights = softmax(mu)).
- [ours] `last_relu=false` drops the ReLU of the last CRB (not Table 1): after ReLU then batch
  norm, a row of the map with no positive entry is constant, i.e. a uniform op distribution that
  gets no gradient ("dead" edges, seen in the Fashion-MNIST runs).
- [ours] `last_norm=edge` (default) takes the last batch norm's statistics per edge (row) of the
  one-channel output map; the gain and bias stay one scalar each, as Table 1's BN has.
  `last_norm=map` takes them over the whole edges x ops map, the literal reading. With `map`,
  a few sharp rows set the scale that squeezes the others and rows without a positive entry
  die, and no Fashion-MNIST epoch became nearly one-hot; with `edge` the one gain, trained by
  every edge's gradient, acts as the common temperature and the distribution sharpens as a
  whole (docs/vimnas/README.md).
- [ours] every batch norm uses the statistics of the current prior's map (no running
  averages), so mu is a deterministic function of prior and parameters.
- [ours] `mode=bilevel` (default): the network takes the first-order gradient of the validation
  loss, the supernet an SGD step on the training loss under a fresh detached sample. `joint`:
  both from one training-loss backward (the single-level max over weights and network).
  `mixed`: the network takes dL_tr + lam dL_val (MiLeNAS-style), the weights dL_tr.
- [ours] the supernet is PC-DARTS's by default (presets): partial channels and, with
  `edge_norm`, per-node edge betas trained with the network by the same Adam optimizer.
- [ours] the genotype is derived from the expected weights E[softmax(mu + noise * eps)]
  (Monte Carlo over `mc_samples` draws with fixed draws, so the anytime curves are smooth; over
  prior draws too with a resampled prior), by the space's usual rule (DARTS top-2).
- [ours] the derived genotype is tracked every architecture step; with `stop_after=N` the search
  ends once it has not changed for N steps.
Randomness is a function of (seed, step), so resumed runs are bit-identical.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.config import Choice, opt
from archsearch.errors import ConfigError
from archsearch.seeds import step_seed
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
from archsearch.strategies.pcdarts import node_softmax

PRIOR_CHANNELS = 3


class Mode(Choice):
    bilevel = "bilevel"  # the network on the validation loss (first order), the weights on the train loss
    joint = "joint"  # one training backward for both
    mixed = "mixed"  # the network on L_tr + lam L_val


class Prior(Choice):
    fixed = "fixed"  # N(0, I) drawn once, saved with the run
    resample = "resample"  # drawn every step


class LastNorm(Choice):
    edge = "edge"  # the last BN's statistics per edge row (ours)
    map = "map"  # over the whole edges x ops map (the literal reading)


@dataclass
class VimnasConfig(GradientConfig):
    """VIM-NAS options (strategies vimnas-s, vimnas, vimnas-l)."""

    name: str = "vimnas"
    edge_norm: bool = opt(True, "PC-DARTS edge-normalisation betas, learnt with the network")
    width: int = opt(14, "hidden channels of the architectural network (supplement Table 1)", low=1)
    kernel: int = opt(3, "convolution kernel of the architectural network (odd)", low=1)
    last_relu: bool = opt(True, "Table 1: the last CRB has its ReLU too; false = conv, batch norm")
    last_norm: LastNorm = opt(LastNorm.edge, "statistics of the last batch norm")
    prior: Prior = opt(Prior.fixed, "the (3, edges, ops) prior: drawn once or every step")
    noise: float = opt(1.0, "std of eps in A = mu + noise * eps (0 = no sampling: softmax(mu))", low=0.0)
    mode: Mode = opt(Mode.bilevel, "how the network and the supernet weights are updated")
    lam: float = opt(1.0, "mode=mixed: lambda of L_tr + lambda L_val", low=0.0)
    mc_samples: int = opt(64, "draws behind the expected weights (derivation, history)", low=1)
    stop_after: int = opt(0, "end the search once the derived genotype is unchanged this many steps", low=0)


def table1_channels(variant: str, width: int) -> list[int]:
    """Channel sequence of the CRB stack of a variant (supplement, Table 1)."""
    hidden = {"vimnas-s": 0, "vimnas": 1, "vimnas-l": 4}[variant]
    return [PRIOR_CHANNELS] + [width] * hidden + [1]


class EdgeNorm(nn.Module):
    """The last CRB's batch norm with statistics per edge (row) of the one-channel edges x ops
    map instead of over the whole map; the affine part is Table 1's: one gain, one bias."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (1, 1, E, O)
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * self.weight + self.bias


class CRB(nn.Sequential):
    """Convolution, ReLU, batch norm (in this order, as the supplement defines CRB)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, relu: bool = True, norm: nn.Module | None = None):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2),
            nn.ReLU() if relu else nn.Identity(),
            norm or nn.BatchNorm2d(c_out, track_running_stats=False),
        )


class ArchitecturalNetwork(nn.Module):
    """A CRB stack mapping a (3, edges, ops) prior to the (edges, ops) mean logits."""

    def __init__(self, channels: list[int], kernel: int = 3, last_relu: bool = True, last_norm: str = "edge"):
        super().__init__()
        if kernel % 2 == 0:
            raise ConfigError(f"strategy.kernel must be odd to keep the edges x ops map, got {kernel}")
        if last_norm not in list(LastNorm):
            raise ConfigError(f"last_norm must be one of {', '.join(LastNorm)}, got {last_norm!r}")
        n = len(channels) - 1
        self.layers = nn.Sequential(*[
            CRB(channels[i], channels[i + 1], kernel, relu=last_relu or i < n - 1,
                norm=EdgeNorm() if i == n - 1 and last_norm == "edge" else None)
            for i in range(n)])

    def forward(self, prior: torch.Tensor) -> torch.Tensor:
        return self.layers(prior.unsqueeze(0))[0, 0]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed % (2**63))


def _randn(shape, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Normal draws from a CPU generator, then moved: the same numbers on every device."""
    return torch.randn(shape, generator=gen, dtype=like.dtype).to(like.device)


def edge_entropy(w: torch.Tensor) -> torch.Tensor:
    """Mean over edges of the entropy (nats) of each edge's operation distribution."""
    p = w.clamp_min(1e-12)
    return -(w * p.log()).sum(-1).mean()


class VimNas(SearchStrategy):
    name = "vimnas"
    spaces = DARTS_SPACES

    def __init__(self, space, cfg):
        super().__init__(space, cfg)
        vc = cfg
        shapes = space.arch_shapes()
        if any(len(s) != 2 for s in shapes.values()):
            raise ConfigError(f"{self.name} needs (edges, ops) architecture weights, space {space.name} has {shapes}")
        self.kinds = sorted(shapes)
        channels = table1_channels(self.name, vc.width)
        self.nets = nn.ModuleDict({
            k: ArchitecturalNetwork(channels, vc.kernel, vc.last_relu, vc.last_norm) for k in self.kinds})
        for k in self.kinds:
            self.register_buffer(f"prior_{k}", torch.randn(PRIOR_CHANNELS, *shapes[k]))
        if cfg.edge_norm:
            self.betas = nn.ParameterDict({k: nn.Parameter(1e-3 * torch.randn(shapes[k][0])) for k in self.kinds})
        # stability of the derived genotype: its one-hot form, and since which step it holds
        self.register_buffer("last_arch", torch.zeros(len(self.kinds), *shapes[self.kinds[0]]))
        self.register_buffer("stable_since", torch.tensor(-1))
        self.register_buffer("last_step", torch.tensor(-1))
        self.optimizer = self.make_arch_optimizer()

    # -- the distribution ---------------------------------------------------------------------
    def prior(self, kind: str) -> torch.Tensor:
        return getattr(self, f"prior_{kind}")

    def mean_logits(self, priors: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """mu per cell type, from the kept priors or the given ones."""
        priors = priors or {k: self.prior(k) for k in self.kinds}
        return {k: self.nets[k](priors[k]) for k in self.kinds}

    def edge_weights(self) -> dict[str, torch.Tensor]:
        if not self.cfg.edge_norm:
            return {}
        groups = self.space.edge_groups()
        return {k + "_edges": node_softmax(b, groups) for k, b in self.betas.items()}

    def step_priors(self, seed: int, step: int) -> dict[str, torch.Tensor] | None:
        """The priors of one step: the kept ones, or fresh draws that depend on (seed, step)."""
        if self.cfg.prior == "fixed":
            return None
        gen = _generator(step_seed(seed, step, 5))
        return {k: _randn(self.prior(k).shape, gen, self.prior(k)) for k in self.kinds}

    def sample(self, seed: int, step: int, salt: int, priors=None) -> dict[str, torch.Tensor]:
        """softmax(mu + noise * eps): differentiable w.r.t. the network (reparameterisation)."""
        mu = self.mean_logits(priors)
        gen = _generator(step_seed(seed, step, salt))
        sigma = self.cfg.noise
        out = {k: torch.softmax(m + sigma * _randn(m.shape, gen, m), dim=-1) for k, m in mu.items()}
        out.update(self.edge_weights())
        return out

    def weights(self):
        """One reparameterised sample at the kept prior (the base interface; steps use `sample`)."""
        return self.sample(0, 0, 0)

    @torch.no_grad()
    def expected_weights(self):
        """E[softmax(mu + noise * eps)] by Monte Carlo with fixed draws (common random numbers)."""
        vc = self.cfg
        gen = _generator(12345)
        if vc.prior == "fixed":
            mus = [self.mean_logits()]
        else:
            mus = [self.mean_logits({k: _randn(self.prior(k).shape, gen, self.prior(k)) for k in self.kinds})
                   for _ in range(vc.mc_samples)]
        out = {}
        for k in self.kinds:
            mu = torch.stack([m[k] for m in mus])  # (P, E, O)
            if vc.noise == 0:
                out[k] = torch.softmax(mu, -1).mean(0)
                continue
            reps = math.ceil(vc.mc_samples / mu.shape[0])
            eps = _randn((mu.shape[0] * reps, *mu.shape[1:]), gen, mu)[: vc.mc_samples]
            out[k] = torch.softmax(mu.repeat(reps, 1, 1)[: vc.mc_samples] + vc.noise * eps, -1).mean(0)
        out.update({k: v.detach() for k, v in self.edge_weights().items()})
        return out

    # -- one iteration ------------------------------------------------------------------------
    def arch_params(self) -> list[nn.Parameter]:
        return list(self.parameters())

    def arch_step(self, ctx: StepContext, val, priors=None) -> float:
        """Bilevel: one optimizer step on the first-order gradient of the validation loss."""
        loss, _, _ = forward_loss(ctx, val, self.sample(ctx.seed, ctx.step, 0, priors))
        check_finite(loss, "architecture loss", ctx.step)
        params = self.arch_params()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        self.apply_arch_grads([torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)], ctx.step)
        return loss.item()

    def _single_level_step(self, ctx: StepContext, train, priors, lam: float) -> dict[str, float]:
        """joint / mixed: one training-loss backward feeds the weights and the network."""
        params = self.arch_params()
        ctx.optimizer.zero_grad(set_to_none=True)
        for p in params:
            p.grad = None
        loss_tr, out, targets = forward_loss(ctx, train, self.sample(ctx.seed, ctx.step, 0, priors))
        check_finite(loss_tr, "training loss", ctx.step)
        loss_tr.backward()
        grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]
        for p in params:
            p.grad = None
        metrics = {}
        if lam:
            loss_val, _, _ = forward_loss(ctx, ctx.next_val(), self.sample(ctx.seed, ctx.step, 2, priors))
            check_finite(loss_val, "architecture loss", ctx.step)
            g_val = torch.autograd.grad(loss_val, params, allow_unused=True)
            grads = [g if v is None else g + lam * v for g, v in zip(grads, g_val)]
            metrics["arch_loss"] = loss_val.item()
        metrics.update(weight_step(ctx, train, None, loss_and_out=(loss_tr, out, targets)))
        self.apply_arch_grads(grads, ctx.step)
        return metrics

    def step(self, ctx: StepContext, train):
        mode = self.cfg.mode
        priors = self.step_priors(ctx.seed, ctx.step)
        if not self.arch_active(ctx):
            return weight_step(ctx, train, self.sample(ctx.seed, ctx.step, 1, priors))
        if mode == "bilevel":
            arch_loss = self.arch_step(ctx, ctx.next_val(), priors)
            metrics = {"arch_loss": arch_loss}
            metrics.update(weight_step(ctx, train, self.sample(ctx.seed, ctx.step, 1, priors)))
        else:
            metrics = self._single_level_step(ctx, train, priors, self.cfg.lam if mode == "mixed" else 0.0)
        metrics.update(self.track(ctx.step))
        return metrics

    # -- convergence --------------------------------------------------------------------------
    @torch.no_grad()
    def track(self, step: int) -> dict[str, float]:
        """Derive after an architecture step; note since when the genotype has not changed."""
        w = self.expected_weights()
        arch = self.space.derive(w)
        hot = self.space.one_hot(arch)
        now = torch.stack([hot[k] for k in self.kinds]).to(self.last_arch)
        if self.stable_since < 0 or not torch.equal(now, self.last_arch):
            self.last_arch.copy_(now)
            self.stable_since.fill_(step)
        self.last_step.fill_(step)
        out = {f"entropy_{k}": edge_entropy(w[k]).item() for k in self.kinds}
        out["stable_steps"] = float(self.stable_steps())
        return out

    def stable_steps(self) -> int:
        """Architecture steps for which the derived genotype has stayed the same."""
        return 0 if self.stable_since < 0 else int(self.last_step - self.stable_since)

    def should_stop(self) -> bool:
        n = self.cfg.stop_after
        return n > 0 and self.stable_steps() >= n

    def report(self) -> dict:
        return {"genotype_stable_since_step": int(self.stable_since),
                "genotype_stable_steps": self.stable_steps()}

    def arch_start_epoch(self) -> float:
        return self.cfg.arch_freeze_epochs


@STRATEGIES.register("vimnas-s", config=VimnasConfig)
class VimNasSmall(VimNas):
    name = "vimnas-s"


STRATEGIES.register("vimnas", config=VimnasConfig)(VimNas)


@STRATEGIES.register("vimnas-l", config=VimnasConfig)
class VimNasLarge(VimNas):
    name = "vimnas-l"
