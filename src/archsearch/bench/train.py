"""`archsearch bench --train PRESET`: is training compute-bound or starved by the data pipeline?

Three rates on one training configuration, in one process:
  data     images/s the loader delivers alone (decode, augmentation, collation, workers)
  compute  images/s of the training step on one batch already on the device
  train    images/s of the real loop (loader + step), the number a run achieves
train/compute near 1.0 means the pipeline keeps up; data well above compute means it has headroom.
"""
from __future__ import annotations

import resource
import time

import torch

from archsearch.config import TrainConfig
from archsearch.engine.device import select_device, synchronize
from archsearch.engine.distributed import DistInfo
from archsearch.engine.train import Trainer
from archsearch.models.cost import count_macs, count_params


def run_train_bench(cfg: TrainConfig, steps: int) -> dict:
    cfg.model.genotype = cfg.model.genotype or "DARTS_V2"
    t = Trainer.build(cfg, DistInfo(), select_device(cfg.device))
    t.train.sampler.set_epoch(0)
    t.net.train()
    need = steps + 2
    if len(t.train) < need:
        raise ValueError(f"the training set gives {len(t.train)} batches; need {need} (lower --steps)")
    batch_images = t.train.sampler.local_batch

    it = iter(t.train)
    next(it)  # workers up
    t0 = time.perf_counter()
    for _ in range(steps):
        next(it)
    data_rate = steps * batch_images / (time.perf_counter() - t0)

    inputs, targets = t._batch(next(iter(t.train)))
    for _ in range(2):
        t.train_step(inputs, targets)
    synchronize(t.device)
    if t.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(t.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        t.train_step(inputs, targets)
    synchronize(t.device)
    compute_rate = steps * batch_images / (time.perf_counter() - t0)

    t.train.sampler.set_epoch(1)
    it = iter(t.train)
    t.train_step(*t._batch(next(it)))
    synchronize(t.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        t.train_step(*t._batch(next(it)))
    synchronize(t.device)
    train_rate = steps * batch_images / (time.perf_counter() - t0)

    channels = t.objective.input_channels(t.info.in_channels)
    peak = (torch.cuda.max_memory_allocated(t.device) / 2**20 if t.device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {
        "device": str(t.device), "threads": torch.get_num_threads(), "workers": cfg.data.num_workers,
        "batch": batch_images, "image_size": t.info.image_size, "params_M": count_params(t.model) / 1e6,
        "mult_adds_M": count_macs(t.model, channels, t.objective.input_size(t.info.image_size),
                                  t.objective.inputs_per_sample) / 1e6,
        "data_img_s": data_rate, "compute_img_s": compute_rate, "train_img_s": train_rate,
        "train_over_compute": train_rate / compute_rate,
        "peak_mb": peak, "peak_kind": "CUDA allocated" if t.device.type == "cuda" else "process max RSS",
    }


def format_train_bench(r: dict) -> str:
    return "\n".join([
        f"device {r['device']} ({r['threads']} threads), {r['workers']} loader workers, batch {r['batch']}, "
        f"{r['image_size']} px, {r['params_M']:.3f}M params, {r['mult_adds_M']:.1f}M mult-adds/image",
        f"data     {r['data_img_s']:10.1f} img/s  (loader alone)",
        f"compute  {r['compute_img_s']:10.1f} img/s  (train step on a batch already loaded)",
        f"train    {r['train_img_s']:10.1f} img/s  (loader + step) = {r['train_over_compute']:.2f} x compute",
        f"peak memory {r['peak_mb']:.0f} MB ({r['peak_kind']})",
    ])
