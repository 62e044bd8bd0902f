"""The search loop: one run directory, resumable at any checkpoint, any space/strategy/objective.

run_dir/
  run.json             the run's identity: kind, resolved config (engine/rundir.py guards it)
  config.yaml          resolved configuration (a resumed run must match it)
  metrics.jsonl        per-step training metrics and per-epoch validation
  arch_history.jsonl   softmaxed architecture weights every `history_every` steps
  tb/                  TensorBoard events
  checkpoint.pt        latest state (atomic): weights, architecture, optimizers, RNG, data positions
  genotype.json        the derived architecture (updated every epoch, final at the end)
  summary.json         final result: architecture, its cost, timings
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from archsearch.collectives import same_on_all_ranks, use_global_batch_norm
from archsearch.config import SearchConfig, to_dict
from archsearch.data import build_search_data, check_labels
from archsearch.engine.device import default_dtype, rng_state, seed_everything, select_device, set_rng_state
from archsearch.engine.distributed import (
    SINGLE_PROCESS,
    DistInfo,
    all_reduce_sum,
    max_divergence,
    run_in_process_group,
)
from archsearch.engine.execution import begin_step, prepare_supernet
from archsearch.engine.loop import RunLoop
from archsearch.engine.schedules import epoch_lr
from archsearch.errors import CheckpointError
from archsearch.objectives import create_objective
from archsearch.spaces import create_space
from archsearch.strategies import StepContext, create_strategy

log = logging.getLogger("archsearch")
CHECKPOINT_FORMAT = 1


@dataclass
class Search:
    """Everything a search holds, built from a config."""

    cfg: SearchConfig
    device: torch.device
    data: object
    objective: object
    space: object
    model: torch.nn.Module
    strategy: object
    optimizer: torch.optim.SGD
    steps_per_epoch: int
    dist: DistInfo = SINGLE_PROCESS

    @classmethod
    def build(cls, cfg: SearchConfig, dist: DistInfo = SINGLE_PROCESS, device: Optional[torch.device] = None) -> Search:
        """Under torchrun (`dist`), every rank holds the same supernet and strategy and reads its
        slice of each global batch; batch norm runs over the global batch and strategies average
        every gradient (collectives.py), so all ranks follow the single-process run."""
        seed_everything(cfg.seed)  # the same initial weights, architecture and sampling on every rank
        device = device or select_device(cfg.device)
        data = build_search_data(cfg.data, cfg.seed, rank=dist.rank, world=dist.world)
        info = data.info
        check_labels(cfg.objective.name, info)
        objective = create_objective(cfg.objective, info)
        space = create_space(cfg.space)
        shape = objective.input_channels(info.in_channels), objective.input_size(info.image_size)
        space.bind(*shape)  # input-dependent layouts are fixed before anything asks for shapes
        model = space.build_supernet(*shape, objective.build_head).to(device)
        if dist.enabled and cfg.sync_bn:
            use_global_batch_norm(model)
        prepare_supernet(model, cfg)  # channels-last, torch.compile, CUDA graphs (options, off by default)
        strategy = create_strategy(cfg.strategy, space).to(device)
        o = cfg.optim
        optimizer = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        steps = cfg.steps_per_epoch or data.train.batches_per_epoch
        return cls(cfg, device, data, objective, space, model, strategy, optimizer, steps, dist)

    @property
    def total_steps(self) -> int:
        return self.cfg.optim.epochs * self.steps_per_epoch

    def lr(self, epoch: int) -> float:
        o = self.cfg.optim
        return epoch_lr("cosine", epoch, self.strategy.weight_epochs(o.epochs), o.lr, o.lr_min,
                        warmup=o.lr_warmup_epochs)

    def context(self, step: int) -> StepContext:
        epoch = step // self.steps_per_epoch
        lr = self.lr(epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return StepContext(
            model=self.model, objective=self.objective, optimizer=self.optimizer, lr=lr,
            grad_clip=self.cfg.optim.grad_clip, step=step,
            epoch=step / self.steps_per_epoch, seed=self.cfg.seed, next_val=self.next_val,
            next_train=self.next_train,
        )

    def autocast(self):
        """bf16 autocast of everything a step computes when `amp=bf16` (parameters stay float32)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.amp == "bf16")

    def step(self, ctx: StepContext) -> dict[str, float]:
        """One search iteration of the strategy on the next train batch."""
        begin_step(self.cfg)
        with self.autocast():
            return self.strategy.step(ctx, self.next_train())

    def next_val(self):
        return self._to_device(self.data.val.next())

    def next_train(self):
        return self._to_device(self.data.train.next())

    def _to_device(self, batch):
        dtype = torch.get_default_dtype()  # float64 runs (`precision`) read float32 images
        return tuple(t.to(self.device, dtype if t.is_floating_point() else None, non_blocking=True) for t in batch)

    # -- checkpoints --------------------------------------------------------------------------
    def state(self, step: int) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": "search",
            "step": step,
            "config": to_dict(self.cfg),
            "info": asdict(self.data.info),  # so generation rebuilds without the data
            "model": self.model.state_dict(),
            "strategy": self.strategy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "arch_optimizer": self.strategy.optimizer.state_dict() if self.strategy.optimizer else None,
            "rng": rng_state(),
            "data": {"train": self.data.train.position, "val": self.data.val.position},
        }

    def load_state(self, ckpt: dict) -> int:
        try:
            self.model.load_state_dict(ckpt["model"])
            self.strategy.load_state_dict(ckpt["strategy"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if ckpt["arch_optimizer"] is not None:
                self.strategy.optimizer.load_state_dict(ckpt["arch_optimizer"])
            set_rng_state(ckpt["rng"])
            self.data.train.seek(ckpt["data"]["train"])
            self.data.val.seek(ckpt["data"]["val"])
            return int(ckpt["step"])
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise CheckpointError(f"checkpoint does not fit this search: {type(e).__name__}: {e}") from None

    # -- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, batches: int) -> dict[str, float]:
        """Supernet loss/metrics on the architecture split under the current weights (a monitor)."""
        weights = self.strategy.expected_weights()
        if not weights:
            return {}
        self.model.eval()
        n = batches or self.data.val.batches_per_epoch
        loss_sum, count, sums = 0.0, 0, {}
        for _ in range(n):
            x, y = self.next_val()
            inputs, targets = self.objective.prepare(x, y)
            with self.autocast():
                out = self.model(inputs, weights)
            out = out.float() if out.dtype == torch.bfloat16 else out  # metrics in float32 under amp
            b = targets.shape[0]
            loss_sum += self.objective.loss(out, targets).item() * b
            for k, v in self.objective.metric_sums(out, targets).items():
                sums[k] = sums.get(k, 0.0) + v
            count += b
        self.model.train()
        sums["loss"], sums["count"] = loss_sum, float(count)
        sums = all_reduce_sum(sums, self.dist, self.device)
        loss_sum, count = sums.pop("loss"), sums.pop("count")
        metrics = self.objective.reduce_metrics(sums)
        return {"val_loss": loss_sum / count, **{f"val_{k}": v for k, v in metrics.items()}}


def run_search(cfg: SearchConfig, run_dir: Path, progress: Optional[bool] = None) -> dict:
    """Run (or resume) a search in `run_dir`; returns the summary. Works under torchrun unchanged."""
    with default_dtype(cfg.precision):
        return run_in_process_group(cfg.device, lambda dist, device: _run(cfg, Path(run_dir), dist, device, progress))


def _run(cfg: SearchConfig, run_dir: Path, dist: DistInfo, device: torch.device, progress) -> dict:
    loop = RunLoop(run_dir, "search", cfg, dist, logs=("metrics", "arch_history"))
    s = Search.build(cfg, dist, device)
    main = dist.is_main
    start = 0
    if loop.resuming:
        start = s.load_state(loop.checkpoint)
        log.info("resuming %s at step %d of %d", run_dir, start, s.total_steps)
    loop.begin(keep_through=start - 1, tb_step=start, total=s.total_steps, done=start,
               desc=f"{cfg.strategy.name} search", progress=progress)
    s.model.train()
    end = s.total_steps
    with loop:
        for step in range(start, s.total_steps):
            if s.strategy.should_stop():  # converged by the strategy's criterion (VIM-NAS stop_after)
                end = step
                loop.save_checkpoint(f"step {step}", s.state(step), [s.model], [s.strategy])
                log.info("%s converged: stopping at step %d of %d", cfg.strategy.name, step, s.total_steps)
                break
            if step % cfg.history_every == 0 and main:
                _record_history(loop, s, step)
            ctx = s.context(step)
            metrics = s.step(ctx)
            done = step + 1
            if done % cfg.log_every == 0 or done == s.total_steps:
                metrics = _mean_over_ranks(metrics, s)
                loop.append("metrics", {"step": step, "epoch": ctx.epoch, "lr": ctx.lr, **metrics})
                loop.scalars("search/", metrics, step)
                loop.bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items() if "loss" in k or "top1" in k})
            loop.bar.update(1)
            epoch_end = done % s.steps_per_epoch == 0
            if epoch_end:
                _end_epoch(s, loop, step)
            if epoch_end or done % cfg.checkpoint_every == 0:  # every rank checks the weights, rank 0 writes
                loop.save_checkpoint(f"step {done}", s.state(done), [s.model], [s.strategy])
        loop.close_bar()

        ctx = s.context(max(end - 1, 0))
        with s.autocast():
            arch = s.strategy.finalize(ctx)
        divergence = max(max_divergence(s.model, dist), max_divergence(s.strategy, dist))
        agreed = same_on_all_ranks(s.space.arch_to_dict(arch))
        if not main:
            return {}
        if end % cfg.history_every == 0:
            _record_history(loop, s, end)
    loop.write_json("genotype.json", s.space.arch_to_dict(arch))
    summary = _summary(s, arch, loop.seconds, start, end)
    summary["processes"] = dist.world
    summary["ranks_max_weight_difference"] = divergence
    summary["architecture_same_on_all_ranks"] = agreed
    loop.write_json("summary.json", summary)
    return summary


def _mean_over_ranks(metrics: dict[str, float], s: Search) -> dict[str, float]:
    sums = all_reduce_sum(metrics, s.dist, s.device)
    return {k: v / s.dist.world for k, v in sums.items()}


def _record_history(loop: RunLoop, s: Search, step: int) -> None:
    weights = s.strategy.expected_weights()
    if not weights:
        return
    loop.append("arch_history", {"step": step, "epoch": step / s.steps_per_epoch,
                                 **{k: v.cpu().tolist() for k, v in weights.items()}})
    for k, v in weights.items():
        loop.histogram(f"arch/{k}", v.cpu(), step)


def _end_epoch(s: Search, loop: RunLoop, step: int) -> None:
    epoch = (step + 1) // s.steps_per_epoch
    rec = {"step": step, "epoch": epoch, **s.validate(s.cfg.val_batches)}  # every rank takes part
    if not s.dist.is_main:
        return
    arch = s.strategy.derive()
    if arch is not None:
        rec["genotype"] = s.space.arch_to_dict(arch)
        rec["arch"] = s.space.describe(arch)
        loop.write_json("genotype.json", s.space.arch_to_dict(arch))
        for kind, d in rec["arch"].items():  # the space's numeric facts, e.g. skip-connect counts
            loop.scalars(f"arch/{kind}_", {k: v for k, v in d.items()
                                           if isinstance(v, (int, float)) and not isinstance(v, bool)}, step)
    loop.scalars("search/", {k: v for k, v in rec.items() if k.startswith("val_")}, step)
    loop.append("metrics", rec)
    log.info("epoch %d: %s", epoch, {k: v for k, v in rec.items() if k.startswith("val_")})


def _summary(s: Search, arch, seconds: float, start: int, end: int) -> dict:
    info = s.data.info
    out = {
        "strategy": s.cfg.strategy.name,
        "space": s.cfg.space.name,
        "objective": s.cfg.objective.name,
        "dataset": s.cfg.data.name,
        "steps": end,
        "stopped_early": end < s.total_steps,
        "resumed_at_step": start,
        "seconds_this_process": round(seconds, 2),
        # global train-batch images per second of this process's steps (validation and the final
        # derivation included): the throughput a scaling comparison reads
        "train_images_per_s": round((end - start) * s.cfg.data.batch_size / max(seconds, 1e-9), 2),
        "architecture": s.space.arch_to_dict(arch),
        "describe": s.space.describe(arch),
    }
    out["eval_network"] = s.space.cost(arch, info)
    record = getattr(s.strategy, "selection_record", None)
    if record:
        out["selection"] = record
    out.update(s.strategy.report())
    return out
