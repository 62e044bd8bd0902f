"""`archsearch bench`: time the supernet formulations (reference, fast, batched) on one search configuration.

All paths run in this one process on identical weights and batches. Reported per path: ms per
weight step and per architecture step, images/s of a whole search step, achieved GFLOP/s, and
activation memory (bytes autograd saves for backward; on CUDA the allocator's peak as well), and
the aten ops of a search step that are not views (`ops/step`: about the kernels a GPU launches, which
bound the step's time when the kernels are small, as at C=16).
The work of a step is the reference path's FLOPs (forward + backward, counted by
torch.utils.flop_counter), so GFLOP/s of the paths compare like for like.

The search's execution options apply (`amp=bf16`, `channels_last=true`, `compile=true`,
`cuda_graphs=true`): one option set per bench process, so compiled code and CUDA graphs of one
variant never serve another. `warm-up s` is the two untimed steps, i.e. the compilation; FLOPs,
ops and saved activations are counted on the eager module (the same function).
"""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from archsearch.config import SearchConfig, to_dict
from archsearch.engine.device import synchronize
from archsearch.engine.execution import begin_step, compiles
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
    warmup_s: float  # the untimed steps of both modes: compilation when compile=true


def _timed_steps(s: Search, batch, steps: int, arch: bool) -> tuple[float, float, float]:
    """(wall seconds, process CPU seconds) per step, and the warm-up's wall seconds."""
    ctx = s.context(0)
    ctx.arch_update = arch
    ctx.next_val = lambda: batch

    def step():
        begin_step(s.cfg)  # CUDA graph trees: a new step, as Search.step marks it
        s.strategy.step(ctx, batch)

    with s.autocast():  # amp=bf16 times the bf16 step
        w = time.perf_counter()
        for _ in range(2):  # warm-up: allocator, caches, compilation
            step()
        synchronize(s.device)
        t, c = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step()
        synchronize(s.device)
    return (time.perf_counter() - t) / steps, (time.process_time() - c) / steps, t - w


def eager(s: Search):
    """Run a compiled supernet eagerly: counting modes and hooks would otherwise trigger compilations."""
    return torch.compiler.set_stance("force_eager") if compiles(s.cfg) else contextlib.nullcontext()


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
    total, total_cpu, warm_arch = _timed_steps(s, batch, steps, arch=True)
    weight, _, warm_weight = _timed_steps(s, batch, steps, arch=False)
    cuda_peak = torch.cuda.max_memory_allocated(s.device) / 2**20 if s.device.type == "cuda" else 0.0
    with eager(s):
        saved, ops = _saved_bytes(s, batch), step_ops(s, batch)
    return PathResult(
        impl=impl, weight_ms=weight * 1e3, arch_ms=(total - weight) * 1e3,
        images_per_s=batch[0].shape[0] / total, gflop_per_step=flops / 1e9,
        gflops=flops / 1e9 / total, saved_mb=saved / 2**20, cuda_peak_mb=cuda_peak,
        cpu_step_ms=total_cpu * 1e3, ops_per_step=ops, warmup_s=warm_arch + warm_weight,
    )


def run_bench(cfg: SearchConfig, steps: int = 3, impls: Sequence[str] = IMPLS) -> list[PathResult]:
    """One PathResult per formulation in `impls` (reference first if present: the ratios' base)."""
    base = Search.build(cfg)
    batch = base.next_train()
    state = copy.deepcopy(base.state(0))
    base.model.impl = "reference"
    with eager(base):
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
        f"execution {execution(cfg)}",
        f"{'path':10s} {'weight ms':>10s} {'arch ms':>10s} {'step ms':>10s} {'img/s':>8s} "
        f"{'GFLOP/step':>11s} {'GFLOP/s':>8s} {'saved MB':>9s} {'cuda MB':>8s} {'cpu ms':>9s} {'ops/step':>9s} "
        f"{'warm-up s':>10s}",
    ]
    for r in results:
        lines.append(
            f"{r.impl:10s} {r.weight_ms:10.1f} {r.arch_ms:10.1f} {r.weight_ms + r.arch_ms:10.1f} "
            f"{r.images_per_s:8.1f} {r.gflop_per_step:11.2f} {r.gflops:8.2f} {r.saved_mb:9.1f} "
            f"{r.cuda_peak_mb:8.1f} {r.cpu_step_ms:9.1f} {r.ops_per_step:9d} {r.warmup_s:10.1f}"
        )
    ref = results[0]
    for r in results[1:] if ref.impl == "reference" else ():
        lines.append(f"speed-up (search step, reference/{r.impl}): "
                     f"{(ref.weight_ms + ref.arch_ms) / (r.weight_ms + r.arch_ms):.2f}x wall, "
                     f"{ref.cpu_step_ms / r.cpu_step_ms:.2f}x process CPU time")
    return "\n".join(lines)


def execution(cfg: SearchConfig) -> str:
    """The options that change how the step executes, as overrides (`float32` when none is set)."""
    on = [f"precision={cfg.precision}"] if str(cfg.precision) != "float32" else []
    on += [f"amp={cfg.amp}"] if str(cfg.amp) != "none" else []
    on += [f"{k}=true" for k in ("channels_last", "compile", "cuda_graphs") if getattr(cfg, k)]
    on += [f"compile_backend={cfg.compile_backend}"] if compiles(cfg) else []
    return " ".join(on) or "float32"


def results_json(cfg: SearchConfig, results: list[PathResult]) -> dict:
    """The table as data (for scripts such as benchmarks/gpu_check.py)."""
    return {"device": str(cfg.device), "threads": torch.get_num_threads(), "batch_size": cfg.data.batch_size,
            "execution": execution(cfg), "paths": [{**asdict(r), "step_ms": r.weight_ms + r.arch_ms} for r in results]}
