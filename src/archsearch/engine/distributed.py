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
from torch import nn

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


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def average_(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Average tensors over ranks in place (one flat all-reduce); a no-op in a single process.

    Every gradient a strategy computes from its local batch slice goes through here before it
    is used, so all ranks apply the gradient of the global batch and stay identical.
    """
    if not active() or not tensors:
        return tensors
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for t in tensors:
        t.copy_(flat[offset: offset + t.numel()].view_as(t))
        offset += t.numel()
    return tensors


def average_scalar(value: float) -> float:
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


class _SumOverRanks(torch.autograd.Function):
    """y = sum of x over ranks; the gradient of a sum over ranks is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, x):
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        g = grad.clone()
        dist.all_reduce(g)
        return g


def global_batch_norm(x: torch.Tensor, running_mean, running_var, weight, bias, momentum: float | None,
                      eps: float, num_batches_tracked: torch.Tensor | None = None) -> torch.Tensor:
    """Training-mode batch norm with the moments of the global batch (a differentiable all-reduce).

    The running statistics (possibly views of larger buffers) are updated in place, with the
    unbiased global variance, as F.batch_norm does for one process.
    """
    c = x.shape[1]
    dims = (0, 2, 3)
    moments = torch.cat([x.sum(dims), (x * x).sum(dims), x.new_full((1,), x.numel() / c)])
    moments = _SumOverRanks.apply(moments)
    n = moments[-1]
    mean = moments[:c] / n
    var = (moments[c: 2 * c] / n - mean * mean).clamp_min(0.0)
    y = (x - mean.view(1, c, 1, 1)) * torch.rsqrt(var + eps).view(1, c, 1, 1)
    if weight is not None:
        y = y * weight.view(1, c, 1, 1)
    if bias is not None:
        y = y + bias.view(1, c, 1, 1)
    if running_mean is not None:
        with torch.no_grad():
            if num_batches_tracked is not None:
                num_batches_tracked += 1
            m = momentum if momentum is not None else 1.0 / float(num_batches_tracked)
            running_mean.mul_(1 - m).add_(m * mean)
            running_var.mul_(1 - m).add_(m * var * (n / (n - 1).clamp_min(1.0)))
    return y


class GlobalBatchNorm(nn.BatchNorm2d):
    """Batch norm over the global batch of all ranks.

    Unlike nn.SyncBatchNorm it runs on CPU (gloo) as well as CUDA, so a distributed search or
    training run normalises exactly as the single-process run on the same global batch. Outside
    training mode, or in a single process, it is plain BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        tracked = self.track_running_stats
        return global_batch_norm(x, self.running_mean if tracked else None, self.running_var if tracked else None,
                                 self.weight, self.bias, self.momentum, self.eps,
                                 self.num_batches_tracked if tracked else None)


def is_global(bn: nn.Module) -> bool:
    """Whether `bn` normalises over the global batch now (a GlobalBatchNorm, training, under
    torchrun); code that calls batch norm functionally on a module's buffers asks this."""
    return isinstance(bn, GlobalBatchNorm) and bn.training and active()


def use_global_batch_norm(module: nn.Module) -> nn.Module:
    """Make every BatchNorm2d of `module` a GlobalBatchNorm, keeping the module objects.

    The class is swapped in place rather than the modules replaced, so parameters, buffers,
    hooks and any references other modules hold to them stay valid.
    """
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = GlobalBatchNorm
    return module


def same_on_all_ranks(obj) -> bool:
    """Whether every rank holds an equal (picklable) object, e.g. the derived architecture."""
    if not active():
        return True
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return all(g == gathered[0] for g in gathered)
