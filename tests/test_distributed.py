"""Distributed search under torchrun (2 CPU processes, gloo) against the single-process run."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from helpers import wait_for_checkpoint

from archsearch.cli import main
from archsearch.utils.io import load_checkpoint

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
pytestmark = [pytest.mark.skipif(not os.path.exists(TORCHRUN), reason="torchrun not installed"), pytest.mark.slow]

GEN = ["data.name=generated", "data.generated.image_size=8", "data.generated.channels=1",
       "data.generated.num_classes=4", "data.generated.num_samples=64", "data.batch_size=8",
       "val_batches=2", "log_every=1", "history_every=2",
       "steps_per_epoch=3", "optim.epochs=1", "device=cpu",
       # In float32 these tiny supernets amplify rounding: a reduction summed in another order
       # flips a ReLU kink and one process on 1 vs 2 threads already drifts by 1e-4..1e-1 within
       # three steps. In float64 the two runs below agree to ~1e-11, so a tight tolerance tests
       # the distributed arithmetic, not the rounding.
       "precision=float64"]
SMALL_DARTS = ["space.init_channels=4", "space.layers=3"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _torchrun(args, out, nproc=2, **kw):
    return subprocess.Popen([TORCHRUN, "--standalone", "--nproc_per_node", str(nproc), "-m", "archsearch",
                             "search", *args, "--out", str(out), "--no-progress"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.parametrize("preset,extra", [
    ("darts_fashionmnist", []),  # bilevel, first order
    ("darts2_fashionmnist", []),  # bilevel, second order
    ("milenas1_fashionmnist", []),  # mixed level, shared train backward
    ("milenas2_fashionmnist", []),  # mixed level, second order
    ("pcdarts_fashionmnist", ["space.partial_channels=2", "strategy.arch_freeze_epochs=0"]),  # edge betas
    # the batched supernet: grouped batch norms over the global batch
    ("pcdarts_fashionmnist", ["space.partial_channels=2", "strategy.arch_freeze_epochs=0", "space.impl=batched"]),
    ("random_fashionmnist", ["strategy.selection.samples=4", "strategy.selection.batches=1"]),
    ("vimnas_fashionmnist", []),  # generator network of the architecture
    ("sgnas_fashionmnist", ["strategy.supernet_epochs=1", "optim.epochs=2", "val_batches=1"]),  # both phases
])
def test_two_ranks_equal_one_process_on_the_same_global_batch(tmp_path, preset, extra):
    small = [] if preset.startswith("sgnas") else SMALL_DARTS  # the SGNAS preset's space is small already
    args = [preset, *GEN, *small, *extra]
    p = _torchrun(args, tmp_path / "ddp")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    assert main(["search", *args, "--out", str(tmp_path / "one"), "--no-progress"]) == 0

    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["ranks_max_weight_difference"] == 0.0
    assert summary["architecture_same_on_all_ranks"] is True
    a, b = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt"), load_checkpoint(tmp_path / "one" / "checkpoint.pt")
    for part in ("model", "strategy"):
        assert a[part].keys() == b[part].keys()
        for k in b[part]:
            if a[part][k].is_floating_point():
                assert torch.allclose(a[part][k], b[part][k], rtol=1e-7, atol=1e-9), (part, k)
            else:
                assert torch.equal(a[part][k], b[part][k]), (part, k)
    assert json.loads((tmp_path / "ddp" / "genotype.json").read_text()) == \
        json.loads((tmp_path / "one" / "genotype.json").read_text())
    history = [[json.loads(x) for x in (tmp_path / run / "arch_history.jsonl").read_text().splitlines()]
               for run in ("ddp", "one") if (tmp_path / run / "arch_history.jsonl").exists()]  # none: random
    assert len(history) in (0, 2) and (not history or len(history[0]) == len(history[1]))
    for h_ddp, h_one in zip(*history):
        for k in h_one:
            if k not in ("step", "epoch"):
                assert torch.allclose(torch.tensor(h_ddp[k]), torch.tensor(h_one[k]), atol=1e-9), (h_one["step"], k)
    lines = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in lines if "lr" in r]  # step lines (epoch lines carry no lr)
    assert steps == list(range(a["step"])) and len(steps) >= 3  # rank 0 alone writes, each step once


def test_rank_local_batch_norm_keeps_ranks_identical(tmp_path):
    p = _torchrun(["darts_fashionmnist", *GEN, *SMALL_DARTS, "sync_bn=false"], tmp_path / "ddp")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["ranks_max_weight_difference"] == 0.0
    assert summary["architecture_same_on_all_ranks"] is True


def test_killing_one_rank_stops_the_job_and_the_run_resumes_on_another_rank_count(tmp_path):
    out = tmp_path / "run"
    args = ["darts_fashionmnist", *GEN, *SMALL_DARTS, "steps_per_epoch=40", "checkpoint_every=1"]
    p = _torchrun(args, out)
    ckpt = out / "checkpoint.pt"
    wait_for_checkpoint(ckpt, "step", 3, timeout=300)
    workers = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2, workers
    os.kill(int(workers[-1]), signal.SIGKILL)
    _, err = p.communicate(timeout=300)
    assert p.returncode != 0
    assert "archsearch" in err and ("-9" in err or "SIGKILL" in err)
    step = load_checkpoint(ckpt)["step"]  # intact and loadable
    assert 3 <= step < 40
    assert main(["search", *args, "--out", str(out), "--no-progress"]) == 0  # one process takes over
    assert load_checkpoint(ckpt)["step"] == 40
    assert json.loads((out / "summary.json").read_text())["resumed_at_step"] == step
