"""Training an evaluation network from scratch: one run directory, resumable, single or multi-process.

run_dir/
  run.json         the run's identity: resolved config and the hash of the architecture it started with
  config.yaml      resolved configuration (a resumed run must match it)
  genotype.json    the architecture being trained, frozen at the start: a resume whose --genotype/--run
                   reference now names another architecture is refused (engine/rundir.py)
  metrics.jsonl    one line per epoch (train and test metrics, lr, drop path, throughput)
  tb/              TensorBoard events
  checkpoint.pt    state after the last finished epoch (atomic): weights, optimizer, EMA, best
  model.pt         final weights + everything needed to rebuild the network (export reads it)
  best.pt          the weights with the best test score seen so far (the objective's main metric:
                   top-1, mIoU, ...)
  test_correct.npz whether each test sample is right under the main metric after the last epoch, one
                   bit a sample in test-set order (utils/correct.py); only objectives that score
                   samples one by one write it (not segmentation's mIoU)
  summary.json     params, mult-adds, final and best test metrics, timings, the classes and the
                   correctness file

Under torchrun every rank trains its slice of each global batch (data/epochs.py) inside
DistributedDataParallel; rank 0 alone writes. Randomness outside the data (drop path) comes from
a generator reseeded from (seed, epoch, rank) at every epoch start, so a resumed run repeats the
uninterrupted one exactly on CPU.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import Subset

from archsearch.collectives import use_global_batch_norm
from archsearch.config import TrainConfig, to_dict
from archsearch.data import build_dataset, check_labels, dataset_info
from archsearch.data.epochs import eval_loader, train_loader
from archsearch.engine.distributed import (
    DistInfo,
    all_reduce_sum,
    gather_objects,
    max_divergence,
    run_in_process_group,
)
from archsearch.engine.loop import RunLoop
from archsearch.engine.optim import build_optimizer
from archsearch.precise_bn import recompute_bn_stats
from archsearch.engine.schedules import epoch_lr
from archsearch.errors import CheckpointError, ConfigError, DivergenceError
from archsearch.models import create_family
from archsearch.models.cost import count_macs, count_params
from archsearch.objectives import create_objective
from archsearch.seeds import hashed_seed
from archsearch.utils.correct import CORRECT_FILE, write_correct
from archsearch.utils.io import content_hash

log = logging.getLogger("archsearch")
CHECKPOINT_FORMAT = 1


def _epoch_rng_seed(seed: int, epoch: int, rank: int) -> int:
    return hashed_seed("archsearch-train", seed, epoch, rank)


def _add(total: dict[str, float], part: dict[str, float]) -> None:
    for k, v in part.items():
        total[k] = total.get(k, 0.0) + v


def build_network(cfg: TrainConfig, arch: Any, info) -> tuple[nn.Module, Any]:
    """The evaluation network for `arch` and the objective whose head it carries."""
    objective = create_objective(cfg.objective, info)
    family = create_family(cfg.model.name)
    model = family.build(arch, cfg.model, objective.input_channels(info.in_channels),
                         objective.input_size(info.image_size), objective.build_head)
    return model, objective


@dataclass
class Trainer:
    cfg: TrainConfig
    dist: DistInfo
    device: torch.device
    info: Any
    arch: Any
    objective: Any
    model: nn.Module  # the bare network (what checkpoints hold)
    net: nn.Module  # what the steps call: the model, wrapped in DDP and/or compiled
    optimizer: torch.optim.Optimizer
    ema: Optional[AveragedModel]
    train: torch.utils.data.DataLoader
    test: torch.utils.data.DataLoader

    @staticmethod
    def resolve_arch(cfg: TrainConfig) -> Any:
        """The architecture model.genotype names, read once per process (run_train freezes it)."""
        if not cfg.model.genotype:
            raise ConfigError("no architecture to train: pass --genotype NAME|FILE, --run DIR or model.genotype=...")
        return create_family(cfg.model.name).resolve(cfg.model.genotype)

    @classmethod
    def build(cls, cfg: TrainConfig, dist: DistInfo, device: torch.device, arch: Any = None) -> "Trainer":
        arch = cls.resolve_arch(cfg) if arch is None else arch
        info = dataset_info(cfg.data)
        check_labels(cfg.objective.name, info)
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        model, objective = build_network(cfg, arch, info)
        model.to(device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        o = cfg.optim
        optimizer = build_optimizer(model, o)
        ema = None
        if cfg.ema_decay > 0:
            ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        net: nn.Module = model
        if dist.enabled:
            if cfg.sync_bn:
                use_global_batch_norm(net)
            net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        if cfg.compile:
            net = torch.compile(net)
        pin = device.type == "cuda"
        d = cfg.data
        train_set = build_dataset(d, train=True, augment=d.augment)
        if d.subset:
            train_set = Subset(train_set, range(min(d.subset, len(train_set))))
        train = train_loader(train_set, d.batch_size, cfg.seed,
                             dist.rank, dist.world, d.num_workers, pin)
        test = eval_loader(build_dataset(d, train=False, augment=False), d.val_batch_size or d.batch_size,
                           dist.rank, dist.world, d.num_workers, pin,
                           limit=cfg.eval_batches * (d.val_batch_size or d.batch_size))
        return cls(cfg, dist, device, info, arch, objective, model, net, optimizer, ema, train, test)

    @property
    def steps_per_epoch(self) -> int:
        n = len(self.train)
        return min(n, self.cfg.steps_per_epoch) if self.cfg.steps_per_epoch else n

    def autocast(self):
        enabled = self.cfg.amp and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _batch(self, batch):
        x, y = (t.to(self.device, non_blocking=True) for t in batch)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.objective.prepare(x, y)

    # -- one step, one epoch --------------------------------------------------------------------
    def train_step(self, inputs, targets, epoch: int = 0, step: int = 0):
        """Forward (main + auxiliary loss), backward, clip, optimizer and EMA update; returns (loss, logits)."""
        cfg = self.cfg
        with self.autocast():
            out = self.net(inputs)
            logits, aux = out if isinstance(out, tuple) else (out, None)
            loss = self.objective.loss(logits, targets)
            total = loss + cfg.model.aux_weight * self.objective.loss(aux, targets) if aux is not None else loss
        if not torch.isfinite(total):
            raise DivergenceError(f"training loss became {total.item()} in epoch {epoch}, step {step}; "
                                  "lower optim.lr or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss, logits

    def train_epoch(self, epoch: int, bar) -> dict[str, float]:
        cfg = self.cfg
        o = cfg.optim
        lr = epoch_lr(o.schedule, epoch, o.epochs, o.lr, o.lr_min, o.gamma, o.lr_warmup_epochs, o.decay_epochs)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        drop = cfg.model.drop_path * epoch / cfg.optim.epochs
        self.model.drop_path_prob = drop
        torch.manual_seed(_epoch_rng_seed(cfg.seed, epoch, self.dist.rank))
        self.train.sampler.set_epoch(epoch)
        self.net.train()
        loss_sum, count, sums = 0.0, 0, {}
        t0 = time.time()
        for i, batch in enumerate(self.train):
            if i == self.steps_per_epoch:
                break
            inputs, targets = self._batch(batch)
            loss, logits = self.train_step(inputs, targets, epoch, i)
            b = targets.shape[0]
            count += b
            loss_sum += loss.item() * b
            _add(sums, self.objective.metric_sums(logits.detach().float(), targets))
            bar.update(1)
            if (i + 1) % cfg.log_every == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        seconds = time.time() - t0
        rec, images = self._reduce(loss_sum, count, sums, "train")
        rec.update(lr=lr, drop_path=drop, train_seconds=round(seconds, 2),
                   images_per_s=round(images / max(seconds, 1e-9), 1))
        if cfg.precise_bn_samples > 0:
            rec["precise_bn_batches"] = self.precise_bn()
        return rec

    def precise_bn(self) -> int:
        """Recompute BN statistics from min(samples // batch, all) training batches (pycls)."""
        batches = min(len(self.train), max(1, self.cfg.precise_bn_samples // self.cfg.data.batch_size))

        def inputs():
            for i, batch in enumerate(self.train):
                if i == batches:
                    return
                yield self._batch(batch)[0]

        with self.autocast():
            return recompute_bn_stats(self.model, inputs())

    def _reduce(self, loss_sum: float, images: int, sums: dict[str, float],
                prefix: str) -> tuple[dict[str, float], float]:
        """Loss per image and the objective's split-level metrics from sums over all ranks;
        also the number of images all ranks saw."""
        both = {"loss": loss_sum, "images": float(images), **{f"m.{k}": v for k, v in sums.items()}}
        both = all_reduce_sum(both, self.dist, self.device)
        metrics = self.objective.reduce_metrics({k[2:]: v for k, v in both.items() if k.startswith("m.")})
        rec = {f"{prefix}_loss": both["loss"] / max(both["images"], 1.0)}
        rec.update({f"{prefix}_{k}": v for k, v in metrics.items()})
        return rec, both["images"]

    def evaluate(self, model: nn.Module, prefix: str = "test") -> dict[str, float]:
        return self.evaluate_samples(model, prefix)[0]

    @torch.no_grad()
    def evaluate_samples(self, model: nn.Module,
                         prefix: str = "test") -> tuple[dict[str, float], Optional[np.ndarray]]:
        """The test metrics and this rank's per-sample correctness under the main metric (None when
        the objective has none); `gather_correct` puts the ranks' parts in test-set order."""
        model.eval()
        loss_sum, count, sums, correct = 0.0, 0, {}, []
        for batch in self.test:
            inputs, targets = self._batch(batch)
            with self.autocast():
                logits = model(inputs)
            logits = logits.float()
            b = targets.shape[0]
            count += b
            loss_sum += self.objective.loss(logits, targets).item() * b
            _add(sums, self.objective.metric_sums(logits, targets))
            correct.append(self.objective.sample_correct(logits, targets))
        rec = self._reduce(loss_sum, count, sums, prefix)[0]
        if not correct or any(c is None for c in correct):
            return rec, None
        return rec, torch.cat(correct).cpu().numpy()

    def gather_correct(self, correct: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """Every rank's correctness in test-set order (all ranks call this). Rank r evaluated images
        r, r + W, ... (data/epochs.eval_loader), each image giving the same number of samples."""
        parts = gather_objects((len(self.test.dataset), correct), self.dist)
        if any(c is None for _, c in parts):
            return None
        images = sum(n for n, _ in parts)
        per_image = len(parts[0][1]) // max(parts[0][0], 1)
        out = np.zeros((images, per_image), dtype=bool)
        for r, (_, c) in enumerate(parts):
            out[r::len(parts)] = c.reshape(-1, per_image)
        return out.reshape(-1)

    # -- state ----------------------------------------------------------------------------------
    def state(self, epoch: int, best: dict) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": "train",
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "best": best,
        }

    def load_state(self, ckpt: dict) -> tuple[int, dict]:
        try:
            if ckpt.get("kind") != "train":
                raise ValueError(f"a {ckpt.get('kind')!r} checkpoint, not a training one")
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.ema is not None:
                self.ema.load_state_dict(ckpt["ema"])
            return int(ckpt["epoch"]), dict(ckpt["best"])
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise CheckpointError(f"checkpoint does not fit this training run: {type(e).__name__}: {e}") from None

    def model_file(self, state_dict: dict) -> dict:
        """A self-contained model: weights plus what rebuilds the network (see export.py)."""
        family = create_family(self.cfg.model.name)
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": "model",
            "config": to_dict(self.cfg),
            "arch": family.arch_to_dict(self.arch),
            "info": dataclasses.asdict(self.info),
            "state_dict": state_dict,
        }


def run_train(cfg: TrainConfig, run_dir: Path, progress: Optional[bool] = None) -> dict:
    """Train (or resume) in `run_dir`; returns the summary. Works under torchrun unchanged."""
    return run_in_process_group(cfg.device, lambda dist, device: _run(cfg, Path(run_dir), dist, device, progress))


def _run(cfg: TrainConfig, run_dir: Path, dist: DistInfo, device: torch.device, progress) -> dict:
    arch = Trainer.resolve_arch(cfg)  # its content is part of the run's identity: a changed reference is refused
    family = create_family(cfg.model.name)
    inputs = {"architecture (model.genotype)": content_hash(family.arch_to_dict(arch))}
    loop = RunLoop(run_dir, "train", cfg, dist, inputs)
    t = Trainer.build(cfg, dist, device, arch)
    main = dist.is_main
    key = f"test_{t.objective.main_metric}"  # test_top1, test_miou, ...
    start, best = 0, {key: -math.inf, "epoch": -1}
    if loop.resuming:
        start, best = t.load_state(loop.checkpoint)
        log.info("resuming %s after epoch %d of %d", run_dir, start, cfg.optim.epochs)
    epochs = cfg.optim.epochs
    loop.begin(keep_through=start * t.steps_per_epoch - 1, tb_step=start, total=epochs * t.steps_per_epoch,
               done=start * t.steps_per_epoch, desc=f"train {cfg.model.name}", progress=progress)
    if not loop.resuming:
        loop.write_json("genotype.json", family.arch_to_dict(t.arch))
    rec: dict[str, Any] = {}
    correct = None
    with loop:
        for epoch in range(start, epochs):
            rec = {"epoch": epoch, "step": (epoch + 1) * t.steps_per_epoch - 1, **t.train_epoch(epoch, loop.bar)}
            test, correct = t.evaluate_samples(t.model)
            rec.update(test)
            if t.ema is not None:
                rec.update(t.evaluate(t.ema.module, prefix="ema_test"))
            improved = rec.get(key, -math.inf) > best[key]
            if improved:
                best = {key: rec[key], "epoch": epoch}
            loop.check_finite(f"epoch {epoch}", [t.model, t.ema])  # before best.pt and the checkpoint
            if main:
                loop.append("metrics", rec)
                loop.scalars("train/", {k: v for k, v in rec.items() if isinstance(v, float)}, epoch)
                if improved:
                    loop.write_torch("best.pt", t.model_file(t.model.state_dict()))
                loop.save_checkpoint(f"epoch {epoch}", t.state(epoch + 1, best))
                log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in rec.items() if "test" in k})
    if not rec:  # resumed after the last epoch: the final metrics again, on every rank
        rec, correct = t.evaluate_samples(t.model)
    correct = t.gather_correct(correct)
    divergence = max_divergence(t.model, dist)
    if not main:
        return {}
    final = rec
    loop.write_torch("model.pt", t.model_file(t.model.state_dict()))
    if correct is not None:  # before summary.json: a run with a summary has its file
        write_correct(run_dir / CORRECT_FILE, correct, t.objective.main_metric)
    summary = {
        "model": cfg.model.name,
        "dataset": cfg.data.name,
        "objective": cfg.objective.name,
        "architecture": family.arch_to_dict(t.arch),
        "params": count_params(t.model),
        "params_M": round(count_params(t.model) / 1e6, 3),
        "mult_adds_M": round(count_macs(t.model, t.objective.input_channels(t.info.in_channels),
                                        t.objective.input_size(t.info.image_size),
                                        t.objective.inputs_per_sample) / 1e6, 2),
        "epochs": epochs,
        "num_classes": t.objective.num_classes,
        "test_correct": None if correct is None else {"file": CORRECT_FILE, "metric": t.objective.main_metric,
                                                      "samples": len(correct)},
        "processes": dist.world,
        "ranks_max_weight_difference": divergence,
        "final": {k: v for k, v in final.items() if k.startswith(("test_", "ema_test_"))},
        "best": best,
        "resumed_after_epoch": start,
        "seconds_this_process": round(loop.seconds, 2),
    }
    loop.write_json("summary.json", summary)
    return summary
