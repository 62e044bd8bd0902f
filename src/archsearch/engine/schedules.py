"""Learning-rate schedules in closed form (no scheduler objects whose call order matters).

Convention: epoch e (0-indexed) of E trains with lr(e); the first epoch uses the full rate
(the modern order, as MiLeNAS; the DARTS reference code is shifted by one epoch). A warm-up of W
epochs trains epoch e < W with lr*(e+1)/W and then hands over to the schedule.
"""
from __future__ import annotations

import math

from archsearch.errors import ConfigError
from archsearch.registry import Registry

SCHEDULES: Registry[float] = Registry("lr schedule")


@SCHEDULES.register("cosine")
def _cosine(epoch: int, epochs: int, lr: float, lr_min: float, gamma: float, every: int) -> float:
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2


@SCHEDULES.register("linear")
def _linear(epoch: int, epochs: int, lr: float, lr_min: float, gamma: float, every: int) -> float:
    """PC-DARTS ImageNet: linear to zero at E-5, the last 5 epochs on a gentler slope.

    With fewer than 6 epochs, a plain linear decay to lr/E at the last epoch.
    """
    if epochs <= 5:
        return lr * (epochs - epoch) / epochs
    knee = epochs - 5
    if epoch < knee:
        return lr * (knee - epoch) / knee
    return lr * (epochs - epoch) / (5 * knee)


@SCHEDULES.register("exponential")
def _exponential(epoch: int, epochs: int, lr: float, lr_min: float, gamma: float, every: int) -> float:
    """DARTS / MiLeNAS ImageNet: multiply by gamma (0.97) every epoch; SGNAS ImageNet: by 0.963
    every 3 epochs (counted from epoch 0, warm-up included)."""
    return lr * gamma ** (epoch // every)


def epoch_lr(name: str, epoch: int, epochs: int, lr: float, lr_min: float = 0.0, gamma: float = 0.97,
             warmup: int = 0, every: int = 1) -> float:
    schedule = SCHEDULES.get(name)  # unknown names fail here, before any warm-up epoch
    if every < 1:
        raise ConfigError(f"optim.decay_epochs must be >= 1, got {every}")
    if epoch < warmup:
        return lr * (epoch + 1) / warmup
    return schedule(epoch, epochs, lr, lr_min, gamma, every)

