"""Learning-rate schedules in closed form (no scheduler objects whose call order matters).

Convention: epoch e (0-indexed) of E trains with lr(e); the first epoch uses the full rate
(the modern order, as MiLeNAS; the DARTS reference code is shifted by one epoch).
"""
from __future__ import annotations

import math


def cosine_lr(epoch: int, epochs: int, lr: float, lr_min: float = 0.0, warmup: int = 0) -> float:
    if epoch < warmup:
        return lr * (epoch + 1) / warmup
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2
