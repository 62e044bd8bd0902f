"""Search throughput against the number of torchrun processes.

Runs the same search (same global batch, same steps) in one process and under
`torchrun --nproc_per_node N` for each N, each process with `--threads` torch threads, and prints
the images/s of the search loop that each run's summary.json records (`train_images_per_s`:
global training images per second of wall time, architecture steps included).

    python benchmarks/scaling.py darts_fashionmnist steps_per_epoch=8 --procs 1 2 --threads 1
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def run(preset: str, procs: int, threads: int, overrides: list[str], out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [str(BIN / "archsearch"), "search", preset, *overrides, "--out", str(out), "--no-progress"]
    if procs > 1:
        cmd = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", str(procs), "-m", "archsearch", *cmd[1:]]
    t0 = time.time()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    summary = json.loads((out / "summary.json").read_text())
    return {"procs": procs, "threads": threads, "images_per_s": summary["train_images_per_s"],
            "wall_s": round(time.time() - t0, 1), "same_arch": summary.get("architecture_same_on_all_ranks", True)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("preset")
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.procs:
            rows.append(run(args.preset, n, args.threads, args.overrides, Path(tmp) / f"p{n}"))
            print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["images_per_s"]
    print("\n| processes | threads each | images/s | speed-up | wall s (incl. start) |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        speedup = r["images_per_s"] / base
        print(f"| {r['procs']} | {r['threads']} | {r['images_per_s']} | {speedup:.2f}x | {r['wall_s']} |")


if __name__ == "__main__":
    main()
