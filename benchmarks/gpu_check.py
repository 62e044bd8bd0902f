"""`make gpu-check`: what a lent GPU should tell us, in one run of a few minutes.

Every step runs in its own process with its own timeout (and all of them within --budget), so one
failure or hang does not sink the rest: the CUDA tests (`pytest -m cuda`); `archsearch bench` of the
reference, fast and batched supernet (plus bf16, channels-last, torch.compile and CUDA-graph variants;
the last two on CUDA only, one process per formulation); one epoch each of DARTS-1st, PC-DARTS and VIM-NAS search
on CIFAR-sized generated data, timed end to end with the data pipeline; one `train_cifar10` epoch of
DARTS_V2 (images/s). Each archsearch step runs through this script's --child wrapper, which records
the process's peak memory (torch.cuda.max_memory_allocated; max RSS in --cpu mode). One markdown
table is printed and written, with a JSON of everything, to the results folder.

    python benchmarks/gpu_check.py results/gpu-check       # CUDA, real sizes
    python benchmarks/gpu_check.py --cpu --tiny OUT        # CPU, tiny sizes, seconds (CI: tests/test_gpu_check.py)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A bench variant runs only when the installed SearchConfig has the field its override sets, so
# this script also works on a checkout from before those options. Compiled variants time one
# supernet formulation per process: each formulation compiles anew, and a bench killed by its
# timeout reports nothing, so the reference and fast compilations must not share one.
BENCH_VARIANTS = [("float32", None), ("bf16", "amp=bf16"), ("channels-last", "channels_last=true"),
                  ("compile", "compile=true"), ("cuda graphs", "cuda_graphs=true")]
COMPILED = {"compile", "cuda graphs"}
CPU_SKIPS = "compile and cuda graphs variants skipped in --cpu mode (inductor compiles for minutes on a CPU; " \
            "CUDA graphs need CUDA)"


@dataclasses.dataclass
class Sizes:
    """Data and network sizes of the search, train and bench steps."""

    image: int
    samples: int  # generated images per split (search: half train, half validation)
    bench_steps: int
    extra_search: list[str]  # overrides for every search step
    extra_train: list[str]
    extra_bench: list[str]


FULL = Sizes(32, 50000, 5, [], ["eval_batches=10"], ["data.batch_size=64", "data.num_workers=0"])
TINY = Sizes(16, 32, 1,  # C=8: PC-DARTS's K=4 needs an even C/K
             ["steps_per_epoch=2", "val_batches=1", "space.init_channels=8", "space.layers=3", "data.batch_size=4",
              "data.num_workers=0", "log_every=1", "checkpoint_every=1000", "history_every=1000"],
             ["steps_per_epoch=2", "eval_batches=1", "model.init_channels=4", "model.layers=3", "data.batch_size=4",
              "data.num_workers=0", "log_every=1"],
             ["data.batch_size=2", "data.num_workers=0", "space.init_channels=4", "space.layers=3"])


# ---- the child: run one archsearch command and record its peak memory -------------------------
def child(record: str, argv: list[str]) -> int:
    import torch

    from archsearch.cli import main

    rc = 1
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code if isinstance(e.code, int) else 1
    finally:
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else \
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        Path(record).write_text(json.dumps({"rc": rc, "peak_mb": round(peak, 1),
                                            "peak_kind": "cuda max_memory_allocated" if cuda else "max RSS"}))
    return rc


# ---- the parent ---------------------------------------------------------------------------------
def environment(cuda: bool) -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "archsearch_commit": _git("rev-parse", "--short", "HEAD")}
    if cuda:
        env["cudnn"] = torch.backends.cudnn.version()
        env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.split()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            env["driver"] = None
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _git(*args) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip() \
            or None
    except (OSError, subprocess.SubprocessError):
        return None


def search_config_fields() -> set[str]:
    from archsearch.config import SearchConfig

    return {f.name for f in dataclasses.fields(SearchConfig)}


def run_process(argv: list[str], log: Path, timeout: float) -> tuple[str, float, int | None]:
    """(status, seconds, return code); on timeout the process group gets SIGTERM, then SIGKILL."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        try:
            p = subprocess.Popen(argv, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            f.write(f"gpu-check: could not start {argv[0]}: {e}\n")
            return "failed", time.perf_counter() - t0, None
        try:
            rc = p.wait(timeout=timeout)
            status = "ok" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            rc, status = None, "timeout"
            for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
                try:
                    os.killpg(p.pid, sig)
                    p.wait(timeout=grace)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
    return status, time.perf_counter() - t0, rc


class Checker:
    """Runs the steps in order within a total budget and collects one row per result."""

    def __init__(self, out: Path, device: str, sizes: Sizes, budget: float, search_impl: str):
        self.out, self.device, self.sizes, self.search_impl = out, device, sizes, search_impl
        self.deadline = time.monotonic() + budget
        self.rows: list[dict] = []

    def _timeout(self, own: float) -> float:
        return min(own, self.deadline - time.monotonic())

    def _data(self, samples: int = 0) -> list[str]:
        s = self.sizes
        return [f"device={self.device}", "data.name=generated", f"data.generated.image_size={s.image}",
                "data.generated.channels=3", f"data.generated.num_samples={samples or s.samples}"]

    def _archsearch(self, name: str, args: list[str], own_timeout: float) -> dict:
        """One archsearch command through the --child wrapper; the row's common fields."""
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        record, log = self.out / f"{slug}.peak.json", self.out / f"{slug}.log"
        record.unlink(missing_ok=True)
        timeout = self._timeout(own_timeout)
        if timeout < 5:
            return {"step": name, "status": "skipped (budget)", "seconds": 0.0, "log": log.name}
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", str(record), "--", *args]
        status, seconds, rc = run_process(argv, log, timeout)
        row = {"step": name, "status": status, "seconds": round(seconds, 1), "rc": rc, "log": log.name,
               "command": "archsearch " + " ".join(args)}
        if record.exists():
            row.update({k: v for k, v in json.loads(record.read_text()).items() if k != "rc"})
        if status != "ok":
            row["error"] = _tail(log)
        return row

    def tests(self, own_timeout: float) -> None:
        log = self.out / "pytest-cuda.log"
        timeout = self._timeout(own_timeout)
        argv = [sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-rs", "-p", "no:cacheprovider"]
        if timeout < 5:
            self.rows.append({"step": "CUDA tests (pytest -m cuda)", "status": "skipped (budget)", "seconds": 0.0})
            return
        status, seconds, rc = run_process(argv, log, timeout)
        summary = [ln for ln in _read(log).splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", ln)]
        self.rows.append({"step": "CUDA tests (pytest -m cuda)", "status": status, "seconds": round(seconds, 1),
                          "rc": rc, "log": log.name, "result": summary[-1].strip("= ") if summary else _tail(log, 1)})

    def bench(self, variant: str, override: str | None, impls: str, own_timeout: float) -> None:
        s = self.sizes
        name = f"{variant} {impls}" if variant in COMPILED else variant  # one process per compiled impl
        json_path = self.out / f"bench-{name.replace(' ', '-')}.json"
        json_path.unlink(missing_ok=True)
        args = ["bench", "darts1_cifar10", *self._data(min(s.samples, 256)), *s.extra_bench,
                *([override] if override else []), "--steps", str(s.bench_steps), "--impls", impls,
                "--json", str(json_path)]
        row = self._archsearch(f"bench {name}", args, own_timeout)
        if not json_path.exists():
            self.rows.append(row)
            return
        paths = json.loads(json_path.read_text())["paths"]
        ref = next((p for p in paths if p["impl"] == "reference"), None)
        for p in paths:
            ratio = f", {ref['step_ms'] / p['step_ms']:.2f}x reference" if ref and p is not ref else ""
            self.rows.append({**row, "step": f"bench {variant} {p['impl']}", "bench": p,
                              "peak_mb": p["cuda_peak_mb"] if p["cuda_peak_mb"] else row.get("peak_mb"),
                              "result": f"step {p['step_ms']:.1f} ms (weight {p['weight_ms']:.1f} + arch "
                                        f"{p['arch_ms']:.1f}), {p['images_per_s']:.1f} img/s, "
                                        f"cpu {p['cpu_step_ms']:.0f} ms, saved {p['saved_mb']:.0f} MB, "
                                        f"warm-up {p['warmup_s']:.1f} s{ratio}"})

    def search(self, name: str, preset: str, extra: list[str], own_timeout: float) -> None:
        run = self.out / "runs" / preset
        shutil.rmtree(run, ignore_errors=True)  # an existing run directory would resume, not rerun
        args = ["search", preset, *self._data(), "optim.epochs=1", f"space.impl={self.search_impl}", *extra,
                *self.sizes.extra_search, "--out", str(run), "--no-progress"]
        row = self._archsearch(name, args, own_timeout)
        summary = run / "summary.json"
        if row["status"] == "ok" and summary.exists():
            sm = json.loads(summary.read_text())
            row["summary"] = {k: sm.get(k) for k in ("steps", "seconds_this_process", "train_images_per_s")}
            row["result"] = (f"{sm['steps']} steps, {row['seconds']:.1f} s end to end "
                             f"({sm['seconds_this_process']:.1f} s in the loop), "
                             f"{sm['train_images_per_s']:.1f} train img/s")
        self.rows.append(row)

    def train(self, own_timeout: float) -> None:
        run = self.out / "runs" / "train_cifar10"
        shutil.rmtree(run, ignore_errors=True)
        args = ["train", "train_cifar10", "--genotype", "DARTS_V2", *self._data(), "optim.epochs=1",
                *self.sizes.extra_train, "--out", str(run), "--no-progress"]
        row = self._archsearch("train_cifar10 epoch (DARTS_V2)", args, own_timeout)
        metrics = run / "metrics.jsonl"
        if row["status"] == "ok" and metrics.exists():
            recs = [json.loads(x) for x in metrics.read_text().splitlines() if "images_per_s" in x]
            if recs:
                row["images_per_s"] = recs[-1]["images_per_s"]
                row["result"] = f"{recs[-1]['images_per_s']:.1f} img/s training, {row['seconds']:.1f} s end to end"
        self.rows.append(row)


def _read(log: Path) -> str:
    try:
        return log.read_text(errors="replace")
    except OSError:
        return ""


def _tail(log: Path, lines: int = 3) -> str:
    return " | ".join(_read(log).strip().splitlines()[-lines:])[-600:]


def markdown(env: dict, rows: list[dict], cuda: bool) -> str:
    where = f"GPU {', '.join(env.get('gpus') or [])}, driver {env.get('driver')}, CUDA {env.get('cuda')}, " \
            f"cuDNN {env.get('cudnn')}" if cuda else f"CPU {env['cpu']}, {env['torch_threads']} torch threads"
    lines = [f"gpu-check: {where}; torch {env['torch']}, Python {env['python']}, archsearch {env['archsearch_commit']}",
             "", f"| step | status | s | result | peak MB ({'CUDA allocated' if cuda else 'max RSS'}) |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        result = r.get("result") or r.get("error", "")
        peak = r.get("peak_mb")
        lines.append(f"| {r['step']} | {r['status']} | {r.get('seconds', '')} | {result.replace('|', '/')} | "
                     f"{'' if peak is None else f'{peak:.0f}'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(argv[1], argv[3:] if argv[2:3] == ["--"] else argv[2:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="results folder (created)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU (no GPU needed)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: 2 steps per search on 16x16 images")
    p.add_argument("--budget", type=float, default=450.0, help="seconds for all steps together")
    p.add_argument("--search-impl", default="fast", help="space.impl of the search epochs (fast, batched, reference)")
    p.add_argument("--skip", default="", help="comma-separated steps to leave out: tests,bench,search,train,variants")
    args = p.parse_args(argv)

    import torch

    cuda = not args.cpu
    if cuda and not torch.cuda.is_available():
        print("gpu-check: CUDA is not available (use --cpu for the CPU mode)", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = environment(cuda)
    fields = search_config_fields()
    skip = set(filter(None, args.skip.split(",")))
    c = Checker(out, "cuda" if cuda else "cpu", TINY if args.tiny else FULL, args.budget, args.search_impl)
    steps = [  # most important first: a spent budget skips the tail
        ("tests", lambda: c.tests(150)),
        ("bench", lambda: c.bench("float32", None, "reference,fast,batched", 150)),
        ("search", lambda: c.search("DARTS-1st epoch", "darts1_cifar10", [], 240)),
        ("train", lambda: c.train(150)),
        # arch_freeze_epochs=0: the epoch includes architecture steps, as a searching epoch does
        ("search", lambda: c.search("PC-DARTS epoch", "pcdarts_cifar10", ["strategy.arch_freeze_epochs=0"], 120)),
        ("search", lambda: c.search("VIM-NAS epoch", "vimnas_cifar10", [], 120)),
    ]
    notes = [CPU_SKIPS] if not cuda else []
    for variant, override in BENCH_VARIANTS[1:]:  # only options this archsearch has
        if override.split("=")[0] not in fields or (variant in COMPILED and not cuda):
            continue
        for impls in ("reference", "fast") if variant in COMPILED else ("fast,batched",):
            steps.append(("variants", lambda v=variant, o=override, i=impls: c.bench(v, o, i, 240)))
    for kind, step in steps:
        if kind not in skip:
            step()
    table = "\n\n".join([markdown(env, c.rows, cuda), *notes])
    print(table)
    (out / "gpu-check.md").write_text(table + "\n")
    (out / "gpu-check.json").write_text(json.dumps({
        "environment": env, "mode": {"cuda": cuda, "tiny": args.tiny, "budget_s": args.budget,
                                     "search_impl": args.search_impl},
        "variants": [v for v, o in BENCH_VARIANTS if o is None or o.split("=")[0] in fields], "notes": notes,
        "steps": c.rows}, indent=2) + "\n")
    return 0 if all(r["status"] == "ok" for r in c.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
