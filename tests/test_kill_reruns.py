"""SIGKILL at points before the first checkpoint (right after run.json, mid-epoch with a stray temp
file, a training run): the rerun is bit-identical to an uninterrupted run."""
import json
import os
import signal
import time
from pathlib import Path
from typing import Callable

import pytest
import torch
from helpers import cli
from test_faults import SGEN, TGEN

from archsearch.utils.io import load_checkpoint

KILL_SEARCH = ["search", "darts_fashionmnist", *SGEN, "steps_per_epoch=5", "optim.epochs=2", "checkpoint_every=100",
               "--no-progress"]
KILL_TRAIN = ["train", *TGEN, "--genotype", "DARTS_V2", "optim.epochs=2", "steps_per_epoch=3", "eval_batches=1",
              "--no-progress"]
TIMINGS = ("train_seconds", "images_per_s")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    base = tmp_path_factory.mktemp("uninterrupted")
    # in child processes with the killed runs' thread count: float32 results depend on it
    _rerun(KILL_SEARCH, base / "search")
    _rerun(KILL_TRAIN, base / "train")
    return base


def _records(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k not in TIMINGS} for x in path.read_text().splitlines()]


def _same_run(a: Path, b: Path, logs: tuple[str, ...]) -> None:
    for log in logs:
        assert _records(a / log) == _records(b / log), log
    for f in ("genotype.json", "run.json", "config.yaml"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    ca, cb = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert ca.keys() == cb.keys()
    for part in ("model", "strategy"):
        for k in ca.get(part) or {}:
            assert torch.equal(ca[part][k], cb[part][k]), f"{part}.{k}"
    for k in ("optimizer", "arch_optimizer"):
        sa, sb = (ca.get(k) or {}).get("state", {}), (cb.get(k) or {}).get("state", {})
        for i in sa:
            for name in sa[i]:
                assert torch.equal(torch.as_tensor(sa[i][name]), torch.as_tensor(sb[i][name])), f"{k}.{i}.{name}"


def _kill_when(argv: list, out: Path, ready: Callable[[], bool], timeout: float = 120) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = cli([*argv, "--out", str(out)], env=env)
    deadline = time.time() + timeout
    while not ready() and p.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (out / "checkpoint.pt").exists(), "the kill landed after the first checkpoint"
    assert (out / "run.json").exists()


def _rerun(argv: list, out: Path) -> None:
    p = cli([*argv, "--out", str(out)], env={**os.environ, "OMP_NUM_THREADS": "1"})
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err


@pytest.mark.slow
def test_search_killed_right_after_its_run_record_reruns_bit_identically(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    _kill_when(KILL_SEARCH, out, lambda: (out / "run.json").exists())
    _rerun(KILL_SEARCH, out)
    _same_run(uninterrupted / "search", out, ("metrics.jsonl", "arch_history.jsonl"))


@pytest.mark.slow
def test_search_killed_mid_epoch_before_its_first_checkpoint_reruns_bit_identically(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    metrics = out / "metrics.jsonl"
    _kill_when(KILL_SEARCH, out, lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 2)
    assert metrics.read_text().count("\n") >= 2
    stray = out / ".checkpoint.pt.k1ll3d_x.tmp"  # what a kill inside an atomic write leaves
    stray.write_bytes(b"partial")
    _rerun(KILL_SEARCH, out)
    assert not stray.exists()
    _same_run(uninterrupted / "search", out, ("metrics.jsonl", "arch_history.jsonl"))


@pytest.mark.slow
def test_training_killed_before_its_first_checkpoint_reruns_bit_identically(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    _kill_when(KILL_TRAIN, out, lambda: (out / "run.json").exists())
    _rerun(KILL_TRAIN, out)
    _same_run(uninterrupted / "train", out, ("metrics.jsonl",))
    for f in ("model.pt", "best.pt"):
        a, b = load_checkpoint(uninterrupted / "train" / f), load_checkpoint(out / f)
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"]), f
