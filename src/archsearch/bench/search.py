"""`archsearch bench`: time the supernet formulations (reference, fast, batched) on one search configuration.

All paths run in this one process on identical weights and batches. Reported per path: ms per
weight step and per architecture step, images/s of a whole search step, achieved GFLOP/s, and
activation memory (bytes autograd saves for backward; on CUDA the allocator's peak as well), and
the aten ops of a search step that are not views (`ops/step`: about the kernels a GPU launches, which
bound the step's time when the kernels are small, as at C=16).
The work of a step is the reference path's FLOPs (forward + backward, counted by
torch.utils.flop_counter), so GFLOP/s of the paths compare like for like.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from archsearch.config import SearchConfig, to_dict
from archsearch.engine.device import synchronize
from archsearch.engine.search import Search
from archsearch.spaces.darts.supernet import IMPLS


@dataclass
class PathResult:
    impl: str
    weight_ms: float
    arch_ms: float
    images_per_s: float
    gflop_per_step: float
    gflops: float
    saved_mb: float
    cuda_peak_mb: float
    cpu_step_ms: float  # process CPU time of a search step: robust to other jobs on a shared host
    ops_per_step: int


def _timed_steps(s: Search, batch, steps: int, arch: bool) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per step."""
    ctx = s.context(0)
    ctx.arch_update = arch
    ctx.next_val = lambda: batch
    with s.autocast():  # amp=bf16 times the bf16 step
        for _ in range(2):  # warm-up: allocator, caches, compiled kernels
            s.strategy.step(ctx, batch)
        synchronize(s.device)
        t, c = time.perf_counter(), time.process_time()
        for _ in range(steps):
            s.strategy.step(ctx, batch)
        synchronize(s.device)
    return (time.perf_counter() - t) / steps, (time.process_time() - c) / steps


def _saved_bytes(s: Search, batch) -> int:
    """Bytes of the distinct storages autograd keeps for backward (views counted once)."""
    storages: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        storages[st.data_ptr()] = st.nbytes()
        return t

    inputs, targets = s.objective.prepare(*batch)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), s.autocast():
        loss = s.objective.loss(s.model(inputs, s.strategy.weights()), targets)
    loss.backward()
    s.model.zero_grad(set_to_none=True)
    s.strategy.zero_grad(set_to_none=True)
    return sum(storages.values())


class _OpCounter(TorchDispatchMode):
    """Counts aten calls that compute (not views, not bare allocations)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        aliases = [r.alias_info for r in func._schema.returns]
        if not (any(a is not None and not a.is_write for a in aliases) or func.__name__.startswith("empty")):
            self.count += 1
        return func(*args, **(kwargs or {}))


def step_ops(s: Search, batch) -> int:
    """aten ops of one search step, counted on two samples (the count does not depend on the batch)."""
    small = tuple(t[:2] for t in batch)
    ctx = s.context(0)
    ctx.arch_update = True
    ctx.next_val = lambda: small
    with _OpCounter() as counter:
        s.strategy.step(ctx, small)
    return counter.count


def step_flops(s: Search, batch) -> int:
    ctx = s.context(0)
    ctx.arch_update = True
    ctx.next_val = lambda: batch
    with FlopCounterMode(display=False) as fc:
        s.strategy.step(ctx, batch)
    return fc.get_total_flops()


def bench_path(s: Search, impl: str, batch, steps: int, flops: int) -> PathResult:
    s.model.impl = impl
    s.model.train()
    if s.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(s.device)
    total, total_cpu = _timed_steps(s, batch, steps, arch=True)
    weight, _ = _timed_steps(s, batch, steps, arch=False)
    cuda_peak = torch.cuda.max_memory_allocated(s.device) / 2**20 if s.device.type == "cuda" else 0.0
    return PathResult(
        impl=impl, weight_ms=weight * 1e3, arch_ms=(total - weight) * 1e3,
        images_per_s=batch[0].shape[0] / total, gflop_per_step=flops / 1e9,
        gflops=flops / 1e9 / total, saved_mb=_saved_bytes(s, batch) / 2**20, cuda_peak_mb=cuda_peak,
        cpu_step_ms=total_cpu * 1e3, ops_per_step=step_ops(s, batch),
    )


def run_bench(cfg: SearchConfig, steps: int = 3, impls: Sequence[str] = IMPLS) -> list[PathResult]:
    """One PathResult per formulation in `impls` (reference first if present: the ratios' base)."""
    base = Search.build(cfg)
    batch = base.next_train()
    state = copy.deepcopy(base.state(0))
    base.model.impl = "reference"
    flops = step_flops(base, batch)
    results = []
    for impl in sorted(impls, key=lambda i: i != "reference"):
        base.load_state(copy.deepcopy(state))  # same weights, architecture and optimizer state
        results.append(bench_path(base, impl, batch, steps, flops))
    return results


def format_results(cfg: SearchConfig, results: list[PathResult]) -> str:
    x = cfg.data
    lines = [
        f"space {' '.join(f'{k}={v}' for k, v in to_dict(cfg.space).items())}",
        f"strategy {' '.join(f'{k}={v}' for k, v in to_dict(cfg.strategy).items())}",
        f"batch={x.batch_size} data={x.name} device={cfg.device} threads={torch.get_num_threads()}",
        f"{'path':10s} {'weight ms':>10s} {'arch ms':>10s} {'step ms':>10s} {'img/s':>8s} "
        f"{'GFLOP/step':>11s} {'GFLOP/s':>8s} {'saved MB':>9s} {'cuda MB':>8s} {'cpu ms':>9s} {'ops/step':>9s}",
    ]
    for r in results:
        lines.append(
            f"{r.impl:10s} {r.weight_ms:10.1f} {r.arch_ms:10.1f} {r.weight_ms + r.arch_ms:10.1f} "
            f"{r.images_per_s:8.1f} {r.gflop_per_step:11.2f} {r.gflops:8.2f} {r.saved_mb:9.1f} "
            f"{r.cuda_peak_mb:8.1f} {r.cpu_step_ms:9.1f} {r.ops_per_step:9d}"
        )
    ref = results[0]
    for r in results[1:] if ref.impl == "reference" else ():
        lines.append(f"speed-up (search step, reference/{r.impl}): "
                     f"{(ref.weight_ms + ref.arch_ms) / (r.weight_ms + r.arch_ms):.2f}x wall, "
                     f"{ref.cpu_step_ms / r.cpu_step_ms:.2f}x process CPU time")
    return "\n".join(lines)


def results_json(cfg: SearchConfig, results: list[PathResult]) -> dict:
    """The table as data (for scripts such as benchmarks/gpu_check.py)."""
    return {"device": str(cfg.device), "threads": torch.get_num_threads(), "batch_size": cfg.data.batch_size,
            "paths": [{**asdict(r), "step_ms": r.weight_ms + r.arch_ms} for r in results]}
