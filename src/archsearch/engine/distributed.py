"""torchrun / DistributedDataParallel plumbing shared by training and search.

The same command runs single-process or under `torchrun --nproc_per_node N` (any rendezvous
flags for several nodes): torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) switches it on.
Rank 0 alone writes the run directory; the run directory must be on a file system every node
sees for resume.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, TypeVar

import torch
import torch.distributed as dist

from archsearch.engine.device import select_device
from archsearch.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE_PROCESS = DistInfo()


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA) and pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo(), select_device(device_name)
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = select_device(device_name)
    if device.type == "cuda":
        if device_name in ("auto", "cuda"):
            device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ConfigError(f"distributed runs support cpu and cuda devices, not {device}")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
    return info, device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def run_in_process_group(device_name: str, job: Callable[[DistInfo, torch.device], T]) -> T:
    """Run `job` inside torchrun's process group (or alone), leaving the group however it ends."""
    info, device = init_distributed(device_name)
    try:
        return job(info, device)
    finally:
        shutdown()


def all_reduce_sum(values: dict[str, float], dist_info: DistInfo, device: torch.device) -> dict[str, float]:
    """Sum float metrics over ranks (identity on one process)."""
    if not dist_info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def gather_objects(obj: T, dist_info: DistInfo) -> list[T]:
    """Every rank's `obj`, in rank order (a one-element list on one process)."""
    if not dist_info.enabled:
        return [obj]
    out: list = [None] * dist_info.world
    dist.all_gather_object(out, obj)
    return out


def max_divergence(module: torch.nn.Module, dist_info: DistInfo) -> float:
    """Largest difference of any parameter between ranks (0.0 when they agree, as DDP intends)."""
    params = list(module.parameters())
    if not dist_info.enabled or not params:
        return 0.0
    flat = torch.cat([p.detach().reshape(-1).double() for p in module.parameters()])
    hi, lo = flat.clone(), flat.clone()
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    return float((hi - lo).abs().max())
