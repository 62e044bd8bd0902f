"""Device choice and seeding."""
from __future__ import annotations

import random
from contextlib import contextmanager

import numpy as np
import torch

from archsearch.errors import ConfigError


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return dev


PRECISIONS = {"float32": torch.float32, "float64": torch.float64}


@contextmanager
def default_dtype(precision: str):
    """Build and run in `precision`: every parameter, buffer and sampled tensor takes the default
    dtype. float64 is for checks that compare runs whose float32 rounding differs (thread counts,
    process counts): tiny supernets flip ReLU kinks on such rounding and drift apart."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    before = torch.get_default_dtype()
    torch.set_default_dtype(PRECISIONS[precision])
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a wall-clock timing covers it (CUDA is asynchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
