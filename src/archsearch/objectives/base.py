"""The objective axis: what a batch means and what the network is trained to predict.

An objective turns a raw (images, labels) batch into network inputs and targets, builds the
task head on top of any trunk, and owns the loss and metrics. Supervised classification is
one objective; pretext tasks (rotation, colorization, jigsaw) are others. Strategies only ever
call `prepare`, `loss` and `metrics`, so any strategy runs with any objective.

Contract for `prepare`: it is a pure function of the batch. Second-order strategies prepare the
same batch several times in one step (virtual step, finite-difference Hessian) and random search
scores every candidate on the same batches, so an objective that draws random choices (jigsaw)
seeds them from the batch itself (`batch_seed`), never from a global RNG.
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Optional

import torch
from torch import nn

from archsearch.registry import Registry

OBJECTIVES: Registry["Objective"] = Registry("objective")


class Objective(ABC):
    name: str
    main_metric: str = "top1"  # what picks the best epoch (higher is better)
    inputs_per_sample: int = 1  # network inputs that make one target (a jigsaw puzzle's tiles)
    num_classes: Optional[int] = None  # classes the head predicts, where it is a classifier (sets chance level)

    def input_channels(self, data_channels: int) -> int:
        """Channels the network sees (colorization feeds only L, for instance)."""
        return data_channels

    def input_size(self, image_size: int) -> int:
        """Side of the square inputs the network sees (jigsaw feeds tiles, not whole images)."""
        return image_size

    @abstractmethod
    def build_head(self, channels: int) -> nn.Module:
        """Task head on a (N, channels, H, W) feature map."""

    @abstractmethod
    def prepare(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Network inputs and targets for one raw batch."""

    @abstractmethod
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Batch means (e.g. top-1 accuracy)."""

    def metric_sums(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Additive statistics of one batch; the engine adds them up over a whole split (and
        over ranks) and hands the totals to `reduce_metrics`. Default: the batch means times
        the batch size, plus the sample count."""
        n = float(targets.shape[0])
        sums = {k: v * n for k, v in self.metrics(outputs, targets).items()}
        sums["samples"] = n
        return sums

    def sample_correct(self, outputs: torch.Tensor, targets: torch.Tensor) -> Optional[torch.Tensor]:
        """Whether each sample of the batch is right under `main_metric`, (N,) bool in target order,
        so that two networks can be compared on the same test samples; None where the main metric is
        no mean over samples (mIoU is a set-level ratio)."""
        return None

    def reduce_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """Split-level metrics from the summed `metric_sums` (default: means over the samples)."""
        n = max(sums.get("samples", 0.0), 1.0)
        return {k: v / n for k, v in sums.items() if k != "samples"}


def batch_seed(images: torch.Tensor, salt: str = "") -> int:
    """A 63-bit seed that depends only on the batch content (up to 4096 evenly spread values).

    Device- and dtype-independent for the same values, cheap for large batches.
    """
    flat = images.detach().reshape(-1)
    n = flat.numel()
    if n > 4096:
        flat = flat[torch.linspace(0, n - 1, 4096, device=flat.device).long()]
    sample = flat.to("cpu", torch.float64).numpy().tobytes()
    digest = hashlib.blake2b(sample + f"{tuple(images.shape)}:{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def create_objective(cfg, info) -> Objective:
    return OBJECTIVES.create(cfg.name, cfg, info)


def list_objectives() -> list[str]:
    return OBJECTIVES.names()
