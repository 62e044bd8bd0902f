"""Collective operations over torchrun ranks that any layer may use (a leaf module: torch only).

Spaces, strategies and the engine share them: gradient and scalar averaging, batch norm over
the global batch, and a cross-rank equality check. In a single process every one of them is the
identity, so the same code runs with or without torchrun. Process-group set-up lives in
engine/distributed.py.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


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
