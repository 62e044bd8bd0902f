"""CUDA checks (`pytest -m cuda`, run by `make gpu-check`): the supernet paths on the GPU in float32
and float64, bfloat16 autocast training, DDP over NCCL. Skipped without CUDA, so the normal suite
collects them on any machine and they cannot silently break at import."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_same_step, supernet_pair

from archsearch.cli import main
from archsearch.config import SearchConfig
from archsearch.spaces.darts.ops import DARTS_OPS
from archsearch.utils.io import load_checkpoint

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")]

DEV = "cuda"
# float64: only a different function can disagree; float32 (TF32 off): summation order only
TOL = {torch.float64: dict(rtol=1e-9, atol=1e-11), torch.float32: dict(rtol=1e-3, atol=1e-4)}
TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
GEN = ["data.name=generated", "data.generated.image_size=8", "data.generated.channels=1",
       "data.generated.num_classes=4", "data.generated.num_samples=64", "data.batch_size=8",
       "log_every=1", "device=cuda"]
SEARCH = [*GEN, "space.init_channels=4", "space.layers=3", "val_batches=2", "steps_per_epoch=3",
          "optim.epochs=1", "precision=float64"]


@pytest.fixture(autouse=True)
def exact_float32():
    """TF32 matmuls and convs round to 10 bits, which would hide a wrong function in float32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _pair(impl, dtype, partial=1):
    return supernet_pair(DARTS_OPS, partial, impl, dtype, DEV)


def _assert_same(net, ref, x, y, weights, tol, stats=True):
    assert_same_step(net, ref, x, y, weights, stats, loss_tol=tol, tol=tol, stats_tol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("impl", ["fast", "batched"])
@pytest.mark.parametrize("partial", [1, 4])
def test_paths_equal_reference_on_cuda(dtype, impl, partial):
    net, ref = _pair(impl, dtype, partial)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 16, 16, generator=g, dtype=dtype).to(DEV)
    y = torch.randint(0, 3, (4,), generator=g).to(DEV)
    soft = {k: torch.softmax(torch.randn(14, 8, generator=g, dtype=dtype), -1).to(DEV).requires_grad_()
            for k in ("normal", "reduce")}
    soft.update({k + "_edges": torch.rand(14, generator=g, dtype=dtype).to(DEV).requires_grad_()
                 for k in ("normal", "reduce")})
    _assert_same(net, ref, x, y, soft, TOL[dtype])
    one_hot = {k: F.one_hot(torch.randint(1, 8, (14,), generator=g), 8).to(DEV, dtype) for k in ("normal", "reduce")}
    _assert_same(net, ref, x, y, one_hot, TOL[dtype], stats=False)
    net.load_state_dict(ref.state_dict())
    net.eval()
    ref.eval()
    _assert_same(net, ref, x, y, soft, TOL[dtype])


@pytest.mark.parametrize("impl", ["reference", "fast", "batched"])
def test_bf16_autocast_training_step(impl):
    """One SGD step under bfloat16 autocast: finite float32 gradients, float32 parameters and
    statistics, and a loss within bf16 rounding of the float32 reference."""
    net, ref = _pair(impl, torch.float32)
    x, y = torch.randn(8, 3, 16, 16, device=DEV), torch.randint(0, 3, (8,), device=DEV)
    alphas = {k: (1e-3 * torch.randn(14, 8, device=DEV)).requires_grad_() for k in ("normal", "reduce")}
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    with torch.autocast(DEV, dtype=torch.bfloat16):
        loss = F.cross_entropy(net(x, {k: torch.softmax(v, -1) for k, v in alphas.items()}).float(), y)
    loss.backward()
    opt.step()
    expect = F.cross_entropy(ref(x, {k: torch.softmax(v, -1) for k, v in alphas.items()}), y)
    torch.testing.assert_close(loss, expect, rtol=5e-2, atol=5e-2)
    assert all(torch.isfinite(a.grad).all() for a in alphas.values())
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in net.parameters())
    assert all(b.dtype in (torch.float32, torch.int64) for b in net.buffers())


def test_bf16_training_engine(tmp_path):
    """`archsearch train` with amp (bf16 autocast on CUDA) runs and writes its summary."""
    args = ["train", "train_fashionmnist", *GEN, "model.init_channels=4", "model.layers=3", "steps_per_epoch=2",
            "eval_batches=1", "optim.epochs=1", "amp=true", "--genotype", "DARTS_V2", "--out", str(tmp_path / "t"),
            "--no-progress"]
    assert main(args) == 0
    assert json.loads((tmp_path / "t" / "summary.json").read_text())["epochs"] == 1


@pytest.mark.skipif("amp" not in {f.name for f in dataclasses.fields(SearchConfig)},
                    reason="this archsearch has no search precision option yet")
def test_bf16_search_engine(tmp_path):
    assert main(["search", "darts_fashionmnist", *SEARCH[:-1], "amp=bf16", "--out", str(tmp_path / "s"),
                 "--no-progress"]) == 0


# compile / CUDA graphs: one node per cell keeps inductor's compilation to about a minute
COMPILED = [*SEARCH[:-1], "space.nodes=1", "space.impl=reference"]


def _arch_grad_after_a_step(*overrides):
    """dL/dalpha on the next validation batch after one search step (which compiles, and with
    cuda_graphs records, the passes); the same seed gives every build the same state and batches."""
    from archsearch.config import load_config
    from archsearch.engine.execution import begin_step
    from archsearch.engine.search import Search
    from archsearch.presets import resolve_config
    from archsearch.strategies.base import forward_loss

    s = Search.build(load_config(resolve_config("darts_fashionmnist"), [*COMPILED, *overrides], schema=SearchConfig))
    s.step(s.context(0))
    begin_step(s.cfg)
    loss, _, _ = forward_loss(s.context(1), s.next_val(), s.strategy.weights())
    return torch.autograd.grad(loss, list(s.strategy.parameters()))


@pytest.mark.parametrize("option", ["compile=true", "cuda_graphs=true"])
def test_compiled_search_step_matches_eager_on_cuda(option):
    """Inductor (and its CUDA graph trees) give eager's architecture gradient after a step, to
    float32 rounding of two differently fused programs (TF32 off)."""
    from torch._dynamo.utils import counters

    want = _arch_grad_after_a_step()
    counters.clear()
    got = _arch_grad_after_a_step(option)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-3, atol=1e-5)
    assert counters["inductor"]["cudagraph_skips"] == 0  # inductor did not fall back to plain launches


def test_cuda_graph_search_engine(tmp_path):
    """`archsearch search cuda_graphs=true` runs its fixed-shape steps and derives a valid genotype."""
    from archsearch.spaces.darts.genotype import Genotype

    assert main(["search", "darts_fashionmnist", *COMPILED, "cuda_graphs=true", "--out", str(tmp_path / "s"),
                 "--no-progress"]) == 0
    assert len(Genotype.load(tmp_path / "s" / "genotype.json").normal) == 2


def _torchrun(command, args, out):
    n = torch.cuda.device_count()
    return subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node", str(n), "-m", "archsearch", command,
                           *args, "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=600)


def _per_gpu_batch():
    """A global batch of 4 images per GPU (every rank takes an equal slice)."""
    n = torch.cuda.device_count()
    return [f"data.batch_size={4 * n}", f"data.generated.num_samples={64 * n}"]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP needs at least 2 GPUs")
@pytest.mark.skipif(not os.path.exists(TORCHRUN), reason="torchrun not installed")
def test_ddp_over_nccl(tmp_path):
    """Search on every GPU (NCCL) equals one process on the same global batch (float64); DDP
    training keeps the ranks' weights identical."""
    args = ["darts_fashionmnist", *SEARCH, *_per_gpu_batch()]
    p = _torchrun("search", args, tmp_path / "ddp")
    assert p.returncode == 0, p.stderr[-3000:]
    assert main(["search", *args, "--out", str(tmp_path / "one"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["processes"] == torch.cuda.device_count() and summary["ranks_max_weight_difference"] == 0.0
    a, b = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt"), load_checkpoint(tmp_path / "one" / "checkpoint.pt")
    for k, v in b["model"].items():
        if v.is_floating_point():
            torch.testing.assert_close(a["model"][k], v, rtol=1e-7, atol=1e-9, msg=k)
    p = _torchrun("train", ["train_fashionmnist", *GEN, *_per_gpu_batch(), "model.init_channels=4",
                            "model.layers=3", "steps_per_epoch=2", "eval_batches=1", "optim.epochs=1",
                            "--genotype", "DARTS_V2"], tmp_path / "train")
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads((tmp_path / "train" / "summary.json").read_text())
    assert summary["processes"] == torch.cuda.device_count() and summary["ranks_max_weight_difference"] == 0.0
