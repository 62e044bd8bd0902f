"""Where a study's runs execute: a small interface with two implementations.

A run is a `Job` (an ordinary search or training run directory and its resolved config); an
executor starts jobs, reports the outcome of each as it ends and stops what is running on request.
`local` starts one fresh process per run on this machine (so every run begins from the same
process state as `archsearch search`/`train`), at most `workers` at a time, each with its share of
the CPU threads and, where there are GPUs, one GPU. `ray` submits every run as a Ray task with its
CPU/GPU request, on a local Ray instance or an existing cluster. Results do not depend on the
executor for the same threads per run (float32 results do depend on the thread count).
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_ready
from typing import Any

from archsearch.config import ExecutorConfig, opt
from archsearch.errors import ConfigError
from archsearch.registry import Registry


@dataclass
class Job:
    """One run of a study: its `kind` (JOB_KINDS: search, train, derive, score), its config (a dict) and directory;
    `after`: jobs whose results it reads (a retraining waits for its search)."""

    id: str
    kind: str
    config: dict
    run_dir: str
    after: tuple[str, ...] = ()
    threads: int = 1
    env: dict = field(default_factory=dict)


def execute(job: Job) -> dict:
    """Run one job in this process and return its outcome (never raises: a failure is a record)."""
    os.environ.update(job.env)
    os.environ["OMP_NUM_THREADS"] = str(job.threads)
    import torch

    torch.set_num_threads(job.threads)
    t0, c0 = time.time(), time.process_time()
    outcome: dict[str, Any] = {"id": job.id, "ok": True, "error": "", "traceback": ""}
    try:
        _run_job(job)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 (one failed run is recorded; the study goes on)
        from archsearch.failures import one_line, user_message

        outcome.update(ok=False, error=user_message(e) or one_line(f"{type(e).__name__}: {e}")[:500],
                       traceback=traceback.format_exc())
    outcome["wall_s"] = round(time.time() - t0, 3)
    outcome["cpu_s"] = round(time.process_time() - c0, 3)
    outcome["gpu_s"] = outcome["wall_s"] if _uses_gpu(job) else 0.0
    return outcome


JOB_KINDS: Registry = Registry("job kind")


@JOB_KINDS.register("search")
def _search(job: Job) -> None:
    from archsearch.config import SearchConfig, load_config
    from archsearch.engine.search import run_search

    run_search(load_config(None, [], schema=SearchConfig, base=job.config), job.run_dir, progress=False)


@JOB_KINDS.register("train")
def _train(job: Job) -> None:
    from archsearch.config import TrainConfig, load_config
    from archsearch.engine.train import run_train

    run_train(load_config(None, [], schema=TrainConfig, base=job.config), job.run_dir, progress=False)


@JOB_KINDS.register("derive")
def _derive(job: Job) -> None:
    """config: {"search": run dir, "selection": SelectionConfig as a dict}."""
    from archsearch.config import load_config
    from archsearch.engine.oneshot import derive
    from archsearch.strategies.selection import SelectionConfig

    cfg = load_config(None, [], schema=SelectionConfig, base=job.config["selection"])
    derive(job.config["search"], cfg, job.run_dir)


@JOB_KINDS.register("score")
def _score(job: Job) -> None:
    """config: {"search": run dir, "archs": {id: architecture JSON file}, "batches", "bn_batches"}."""
    from archsearch.engine.oneshot import score_architectures
    from archsearch.utils.io import read_json

    c = job.config
    archs = {key: read_json(path) for key, path in c["archs"].items()}
    score_architectures(c["search"], archs, job.run_dir, c["batches"], c["bn_batches"])


def _run_job(job: Job) -> None:
    JOB_KINDS.get(job.kind)(job)


def _uses_gpu(job: Job) -> bool:
    import torch

    device = str(job.config.get("device", "auto"))
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


class Executor(ABC):
    """Starts jobs and reports their outcomes; `slots` is how many may run at once."""

    slots: int = 1

    def threads(self) -> int:
        """CPU threads each run gets."""
        return 1

    @abstractmethod
    def submit(self, job: Job) -> None: ...

    @abstractmethod
    def wait(self, timeout: float) -> list[dict]:
        """Outcomes of the jobs that ended (at most `timeout` seconds of waiting)."""

    @abstractmethod
    def stop(self) -> None:
        """End every running job now (their run directories resume later) and release resources."""


EXECUTORS: Registry[Executor] = Registry("executor")


# -- local: one process per run ------------------------------------------------------------------
@dataclass
class LocalExecutorConfig(ExecutorConfig):
    name: str = "local"
    workers: int = opt(2, "runs at once on this machine", low=1)
    threads: int = opt(0, "CPU threads per run (0: the machine's cores split evenly between the workers)", low=0)


def _child(job: Job, conn) -> None:
    """Entry of a local worker process: die with the study (SIGKILL included), run, report."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the study stops its workers itself
    conn.send(execute(job))
    conn.close()


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the study process dies, even by SIGKILL, so a
    killed study leaves no run writing on in the background."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the study's stop() still ends its workers
        return
    if os.getppid() == 1:  # the study died before the request took effect
        os._exit(1)


@EXECUTORS.register("local", config=LocalExecutorConfig)
class LocalExecutor(Executor):
    def __init__(self, cfg: LocalExecutorConfig):
        import torch

        self.cfg = cfg
        self.slots = cfg.workers
        self._ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no state inherited
        self._running: dict[str, tuple[Any, Any]] = {}  # id -> (process, connection)
        self._gpus = torch.cuda.device_count()
        self._gpu_of: dict[str, int] = {}

    def threads(self) -> int:
        return self.cfg.threads or max(1, (os.cpu_count() or 1) // self.cfg.workers)

    def submit(self, job: Job) -> None:
        if self._gpus:  # one GPU per run: the lowest one no running job holds
            busy = set(self._gpu_of.values())
            gpu = next((g for g in range(self._gpus) if g not in busy), len(self._gpu_of) % self._gpus)
            self._gpu_of[job.id] = gpu
            job.env = {**job.env, "CUDA_VISIBLE_DEVICES": str(gpu)}
        reader, writer = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(target=_child, args=(job, writer), name=f"archsearch {job.id}")
        proc.start()
        writer.close()
        self._running[job.id] = (proc, reader)

    def wait(self, timeout: float) -> list[dict]:
        if not self._running:
            return []
        handles = [h for proc, conn in self._running.values() for h in (conn, proc.sentinel)]
        wait_ready(handles, timeout)
        done = []
        for job_id, (proc, conn) in list(self._running.items()):
            outcome = None
            if conn.poll():
                try:
                    outcome = conn.recv()
                except EOFError:
                    pass
            elif proc.is_alive():
                continue
            proc.join()
            if outcome is None:
                code = proc.exitcode
                how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                outcome = {"id": job_id, "ok": False, "error": f"the worker process died ({how}; out of memory?)",
                           "traceback": "", "wall_s": None, "cpu_s": None, "gpu_s": None}
            conn.close()
            del self._running[job_id]
            self._gpu_of.pop(job_id, None)
            done.append(outcome)
        return done

    def stop(self) -> None:
        for proc, _ in self._running.values():
            if proc.is_alive():
                proc.kill()
        for proc, conn in self._running.values():
            proc.join()
            conn.close()
        self._running.clear()
        self._gpu_of.clear()


# -- ray: one task per run ------------------------------------------------------------------------
@dataclass
class RayExecutorConfig(ExecutorConfig):
    name: str = "ray"
    address: str = opt("", "'' starts a local Ray instance; 'auto' joins the cluster this node belongs to "
                           "(`ray start --head` / `ray start --address`); or host:port")
    num_cpus: int = opt(0, "a local instance only: CPUs it may use (0: all)", low=0)
    cpus_per_run: int = opt(1, "CPUs each run requests (also its thread count)", low=1)
    gpus_per_run: float = opt(0.0, "GPUs each run requests (e.g. 1, or 0.5 to share)", low=0.0)
    max_pending: int = opt(256, "runs submitted to Ray at once (the cluster queues them)", low=1)


@EXECUTORS.register("ray", config=RayExecutorConfig)
class RayExecutor(Executor):
    def __init__(self, cfg: RayExecutorConfig):
        try:
            import ray
        except ImportError:
            raise ConfigError("executor.name=ray needs Ray: pip install 'archsearch[ray]'") from None
        self.cfg = cfg
        self.slots = cfg.max_pending
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "runtime_env": {"env_vars": _ray_env()}}
            if cfg.address:
                kwargs["address"] = cfg.address
            elif cfg.num_cpus:
                kwargs["num_cpus"] = cfg.num_cpus
            try:
                ray.init(**kwargs)
            except ConnectionError as e:
                raise ConfigError(f"executor.address={cfg.address!r}: cannot join a Ray cluster ({e}); start one "
                                  "with `ray start --head` or leave the address empty for a local instance") from None
        self._task = ray.remote(execute)
        self._refs: dict[Any, str] = {}

    def threads(self) -> int:
        return self.cfg.cpus_per_run

    def submit(self, job: Job) -> None:
        ref = self._task.options(num_cpus=self.cfg.cpus_per_run, num_gpus=self.cfg.gpus_per_run,
                                 max_retries=0, name=job.id).remote(job)
        self._refs[ref] = job.id

    def wait(self, timeout: float) -> list[dict]:
        if not self._refs:
            return []
        ready, _ = self._ray.wait(list(self._refs), num_returns=len(self._refs), timeout=timeout)
        done = []
        for ref in ready:
            job_id = self._refs.pop(ref)
            try:
                done.append(self._ray.get(ref))
            except Exception as e:  # noqa: BLE001 (the task's worker died, or Ray lost it)
                from archsearch.failures import one_line

                done.append({"id": job_id, "ok": False, "error": one_line(f"Ray: {type(e).__name__}: {e}")[:500],
                             "traceback": "", "wall_s": None, "cpu_s": None, "gpu_s": None})
        return done

    def stop(self) -> None:
        for ref in self._refs:
            self._ray.cancel(ref, force=True)
        self._refs.clear()
        if self._started:
            self._ray.shutdown()


def _ray_env() -> dict:
    """What a Ray worker on this node needs to import archsearch as this process does."""
    return {k: os.environ[k] for k in ("PYTHONPATH", "ARCHSEARCH_DATA") if k in os.environ}


def create_executor(cfg: ExecutorConfig) -> Executor:
    return EXECUTORS.create(cfg.name, cfg)
