"""Running a study's jobs through an executor: order, resume, failures, progress.

A job whose run directory holds `summary.json` has finished and is never run again; any other job
runs, and its run directory resumes from its own checkpoint as `archsearch search`/`train` would.
A job that fails is recorded with its one-line error (its traceback under `logs/`) and the others
go on; jobs that read its result are skipped. Each outcome is written to `jobs/<id>.json` when the
job ends, so a study killed at any point loses at most the runs in flight, which resume.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Optional

from tqdm import tqdm

from archsearch.studies.executors import Executor, Job
from archsearch.utils.io import atomic_write_json, atomic_write_text, read_json

DONE, FAILED, SKIPPED = "done", "failed", "skipped"


def record_path(out: Path, job_id: str) -> Path:
    return out / "jobs" / (job_id.replace("/", "__") + ".json")


def finished(job: Job) -> bool:
    return (Path(job.run_dir) / "summary.json").is_file()


def recorded_outcome(out: Path, job: Job) -> Optional[dict]:
    """The outcome of a finished job: its record, or (killed between the two writes) one made from
    its summary, without CPU time."""
    if not finished(job):
        return None
    path = record_path(out, job.id)
    if path.is_file():
        rec = read_json(path)
        if rec.get("status") == DONE:
            return rec
    summary = read_json(Path(job.run_dir) / "summary.json")
    return {"id": job.id, "status": DONE, "error": "", "wall_s": summary.get("seconds_this_process"),
            "cpu_s": None, "gpu_s": None}


def run_jobs(jobs: list[Job], executor: Executor, out: Path, progress: Optional[bool] = None,
             describe: Callable[[Job], str] = lambda job: "", title: str = "study") -> dict[str, dict]:
    """Run every unfinished job (dependencies first, `executor.slots` at a time); id -> outcome record.
    Ctrl-C (KeyboardInterrupt) stops the running jobs and propagates; their directories resume."""
    out = Path(out)
    by_id = {j.id: j for j in jobs}
    unknown = next((d for j in jobs for d in j.after if d not in by_id), None)
    if unknown:
        raise ValueError(f"a job waits for {unknown!r}, which is not among the jobs")
    outcomes: dict[str, dict] = {}
    for job in jobs:
        rec = recorded_outcome(out, job)
        if rec is not None:
            outcomes[job.id] = rec
    waiting = [j for j in jobs if j.id not in outcomes]
    running: dict[str, float] = {}
    threads = executor.threads()
    bar = tqdm(total=len(jobs), initial=len(outcomes), unit="run", desc=title, dynamic_ncols=True,
               disable=False if progress else None if progress is None else True, file=sys.stderr)

    def show(line: str) -> None:
        tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()  # a study's log is read while it runs

    def postfix() -> None:
        failed = sum(r["status"] != DONE for r in outcomes.values())
        bar.set_postfix_str(f"done {len(outcomes) - failed}, running {len(running)}, failed {failed}")

    if outcomes:
        show(f"{len(outcomes)} of {len(jobs)} runs already finished; {len(waiting)} to run")
    try:
        while waiting or running:
            for job in list(waiting):
                if len(running) >= executor.slots:
                    break
                deps = [outcomes.get(d) for d in job.after]
                if any(d is not None and d["status"] != DONE for d in deps):
                    bad = next(d for d in job.after if outcomes.get(d) and outcomes[d]["status"] != DONE)
                    outcomes[job.id] = _write(out, {"id": job.id, "status": SKIPPED, "error": f"{bad} did not finish",
                                                    "wall_s": None, "cpu_s": None, "gpu_s": None})
                    waiting.remove(job)
                    bar.update(1)
                    show(f"skipped  {job.id}: {bad} did not finish")
                    continue
                if any(d is None for d in deps):
                    continue
                job.threads = threads
                executor.submit(job)
                running[job.id] = time.time()
                waiting.remove(job)
            postfix()
            for res in executor.wait(timeout=1.0):
                job = by_id[res["id"]]
                running.pop(job.id, None)
                rec = {"id": job.id, "status": DONE if res["ok"] else FAILED, "error": res["error"],
                       "wall_s": res["wall_s"], "cpu_s": res["cpu_s"], "gpu_s": res["gpu_s"]}
                if res.get("traceback"):
                    atomic_write_text(out / "logs" / (job.id.replace("/", "__") + ".txt"), res["traceback"])
                outcomes[job.id] = _write(out, rec)
                bar.update(1)
                took = f"{res['wall_s']:.0f} s" if res["wall_s"] is not None else "?"
                if res["ok"]:
                    show(f"finished {job.id}: {describe(job)} ({took})")
                else:
                    show(f"FAILED   {job.id}: {res['error']} ({took})")
            postfix()
    finally:
        executor.stop()
        bar.close()
    return outcomes


def _write(out: Path, rec: dict) -> dict:
    atomic_write_json(record_path(out, rec["id"]), rec)
    return rec
