"""Evaluation networks and training from scratch: sizes, schedules, data shards, runs, resume, DDP, export."""
import json
import math
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from helpers import cli, one_line_error, wait_for_checkpoint

from archsearch.cli import main
from archsearch.config import ModelConfig, TrainConfig, component, load_config
from archsearch.data.epochs import ShardSampler
from archsearch.precise_bn import recompute_bn_stats
from archsearch.engine.schedules import epoch_lr
from archsearch.errors import ConfigError
from archsearch.models import create_family
from archsearch.models.darts import EvalCell, drop_path
from archsearch.objectives.supervised import classifier_head
from archsearch.presets import resolve_config
from archsearch.spaces.darts.genotype import published_genotypes
from archsearch.utils.correct import read_correct
from archsearch.utils.io import load_checkpoint


def _net(name, genotype, c, layers, classes, size, in_ch=3, aux=True):
    cfg = component(ModelConfig, name, init_channels=c, layers=layers, auxiliary=aux)
    return create_family(name).build(genotype, cfg, in_ch, size, lambda ch: classifier_head(ch, classes))


@pytest.mark.parametrize("family,size", [("darts-cifar", 32), ("darts-cifar", 28), ("darts-imagenet", 224)])
def test_training_mode_returns_aux_logits_and_eval_mode_only_logits(family, size):
    torch.manual_seed(0)
    net = _net(family, published_genotypes()["PC_DARTS_cifar"], 8, 5, 6, size)
    x = torch.randn(2, 3, size, size)
    logits, aux = net.train()(x)
    assert logits.shape == aux.shape == (2, 6)
    assert net.eval()(x).shape == (2, 6)


def test_drop_path_spares_identities_and_keeps_the_mean():
    g = published_genotypes()["DARTS_V2"]  # its normal cell has stride-1 skip connections
    cell = EvalCell(g, 8, 8, 8, reduction=False, reduction_prev=False)
    kinds = [type(op).__name__ for op in cell.ops]
    assert [not d for d in cell.droppable] == [k == "Identity" for k in kinds] and "Identity" in kinds
    torch.manual_seed(0)
    x = torch.ones(20000, 1, 1, 1)
    y = drop_path(x, 0.3)
    assert y.unique().tolist() == pytest.approx([0.0, 1 / 0.7])
    assert abs(y.mean().item() - 1.0) < 0.02


def test_precise_bn_averages_batch_means_and_second_moments():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
                                torch.nn.Conv2d(3, 2, 1), torch.nn.BatchNorm2d(2, momentum=0.3)).double().eval()
    batches = [torch.randn(4, 2, 6, 6, dtype=torch.float64) for _ in range(3)]
    with torch.no_grad():
        feats = [model[0](x) for x in batches]
        mean = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)
        square = torch.stack([f.var((0, 2, 3)) + f.mean((0, 2, 3)) ** 2 for f in feats]).mean(0)  # unbiased var
    assert recompute_bn_stats(model, iter(batches)) == 3
    torch.testing.assert_close(model[1].running_mean, mean)
    torch.testing.assert_close(model[1].running_var, square - mean**2)
    assert not model.training and model[4].momentum == 0.3  # mode and momentum restored
    before = model[4].running_var.clone()
    assert recompute_bn_stats(model, iter([])) == 0 and torch.equal(model[4].running_var, before)


def test_schedules():
    assert epoch_lr("cosine", 0, 10, 0.1) == 0.1
    assert epoch_lr("cosine", 5, 10, 0.1, 0.0) == pytest.approx(0.05)
    # PC-DARTS linear: to zero at E-5, then (E-e)/(5(E-5)) of the rate
    assert epoch_lr("linear", 0, 250, 0.5) == 0.5
    assert epoch_lr("linear", 100, 250, 0.5) == pytest.approx(0.5 * 145 / 245)
    assert epoch_lr("linear", 247, 250, 0.5) == pytest.approx(0.5 * 3 / (5 * 245))
    assert epoch_lr("exponential", 3, 250, 0.1, gamma=0.97) == pytest.approx(0.1 * 0.97**3)
    assert [epoch_lr("linear", e, 250, 0.5, warmup=5) for e in range(3)] == pytest.approx([0.1, 0.2, 0.3])


def test_shards_of_every_global_batch_make_up_the_single_process_batch():
    single = list(ShardSampler(100, 12, seed=3))
    assert len(single) == 96 and len({i for i, _ in single}) == 96
    shards = [list(ShardSampler(100, 12, seed=3, rank=r, world=3)) for r in range(3)]
    for j in range(8):
        glued = [k for s in shards for k in s[j * 4:(j + 1) * 4]]
        assert glued == single[j * 12:(j + 1) * 12]
    s = ShardSampler(100, 12, seed=3)
    s.set_epoch(1)
    assert list(s) != single
    with pytest.raises(Exception, match="divisible"):
        ShardSampler(100, 10, seed=3, world=3)


GEN = ["data.name=generated", "data.generated.image_size=16", "data.generated.channels=1",
       "data.generated.num_classes=4", "data.generated.num_samples=96", "data.batch_size=8",
       "data.val_batch_size=16", "model.init_channels=4", "model.layers=3", "data.subset=0"]


def _train(tmp_path, *overrides, name="run", genotype="DARTS_V2"):
    out = tmp_path / name
    rc = main(["train", *GEN, *overrides, "--genotype", genotype, "--out", str(out), "--no-progress"])
    return rc, out


def test_train_writes_a_run_directory_and_export_round_trips(tmp_path):
    rc, out = _train(tmp_path, "optim.epochs=2", "steps_per_epoch=3", "precise_bn_samples=24")
    assert rc == 0
    for f in ("config.yaml", "genotype.json", "metrics.jsonl", "checkpoint.pt", "model.pt", "best.pt", "summary.json"):
        assert (out / f).is_file(), f
    epochs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert [e["precise_bn_batches"] for e in epochs] == [3, 3]  # 24 images // batch 8
    assert epochs[1]["drop_path"] == pytest.approx(0.2 * 1 / 2) and epochs[1]["lr"] < epochs[0]["lr"]
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["final"]["test_top1"] <= 1.0 and summary["params"] > 0
    torch.load(out / "model.pt", weights_only=True)

    for fmt, suffix in (("torchscript", ".ts"), ("onnx", ".onnx")):
        assert main(["export", str(out), "--format", fmt]) == 0
        assert (out / f"model{suffix}").is_file()
    import onnxruntime

    from archsearch.engine.export import load_model
    model, channels, size = load_model(out)
    x = torch.randn(5, channels, size, size)  # another batch size than the export's example
    expected = model(x).detach()
    ts = torch.jit.load(str(out / "model.ts"))(x)
    sess = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = torch.from_numpy(sess.run(None, {"images": x.numpy()})[0])
    assert torch.allclose(ts, expected, atol=1e-5) and torch.allclose(onnx_out, expected, atol=1e-4)




def test_bad_training_input_is_one_line_error(tmp_path, capsys):
    rc, out = _train(tmp_path, genotype="NO_SUCH_GENOTYPE")
    assert rc == 2 and "NO_SUCH_GENOTYPE" in one_line_error(capsys)
    assert not out.exists()
    assert main(["train", *GEN, "--out", str(tmp_path / "x")]) == 2
    assert "no architecture" in one_line_error(capsys)
    rc, _ = _train(tmp_path, "optim.schedule=stepwise")
    assert rc == 2 and "stepwise" in one_line_error(capsys)
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", str(bad), "--format", "onnx"]) == 2
    assert "cannot read checkpoint" in one_line_error(capsys)




@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    common = ["train", *GEN, "--genotype", "DARTS_V2", "optim.epochs=4", "steps_per_epoch=3", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = cli(common + ["--out", str(tmp_path / "full")], env=env)
    assert full.wait(timeout=300) == 0, full.stderr.read()

    killed = tmp_path / "killed"
    p = cli(common + ["--out", str(killed)], env=env)
    ckpt = killed / "checkpoint.pt"
    wait_for_checkpoint(ckpt, "epoch", 1, timeout=200)
    p.send_signal(signal.SIGKILL)
    p.wait()
    epoch = load_checkpoint(ckpt)["epoch"]
    assert 1 <= epoch < 4, f"kill landed after epoch {epoch}"
    resumed = cli(common + ["--out", str(killed)], env=env)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()

    a, b = load_checkpoint(tmp_path / "full" / "checkpoint.pt"), load_checkpoint(ckpt)
    assert a["epoch"] == b["epoch"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    lines = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1, 2, 3]
    full_lines = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["test_loss"] for r in lines] == [r["test_loss"] for r in full_lines]


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "torchrun")), reason="torchrun not installed")
@pytest.mark.slow
def test_two_process_ddp_equals_single_process_on_the_same_global_batch(tmp_path):
    """2 gloo ranks x 4 images vs one process on the same 8-image batches.

    Without SyncBatchNorm (CUDA only) each rank normalises with its own 4-image statistics, so the
    single-process reference forwards the two halves separately and averages their losses: the
    gradient DDP computes. Weights (not BN running stats) must then agree after every step.
    """
    out = tmp_path / "ddp"
    args = ["optim.epochs=1", "steps_per_epoch=3", "model.drop_path=0", "data.augment=false",
            "device=cpu", "optim.grad_clip=5"]
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "archsearch", "train", *GEN, *args,
                        "--genotype", "DARTS_V2", "--out", str(out), "--no-progress"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["ranks_max_weight_difference"] == 0.0
    correct, _ = read_correct(out / "test_correct.npz")  # both ranks' halves, gathered
    assert len(correct) == summary["test_correct"]["samples"] == 96
    assert correct.mean() == pytest.approx(summary["final"]["test_top1"])

    from archsearch.engine.distributed import DistInfo
    from archsearch.engine.train import Trainer
    overrides = [*GEN, *args, "model.genotype=DARTS_V2"]
    cfg = load_config(resolve_config("train_fashionmnist"), overrides, schema=TrainConfig)
    t = Trainer.build(cfg, DistInfo(), torch.device("cpu"))
    t.model.train()
    t.train.sampler.set_epoch(0)
    lr = epoch_lr("cosine", 0, 1, cfg.optim.lr, cfg.optim.lr_min)
    for g in t.optimizer.param_groups:
        g["lr"] = lr
    for step, (x, y) in enumerate(t.train):
        if step == 3:
            break
        x = x.contiguous(memory_format=torch.channels_last)
        t.optimizer.zero_grad()
        total = 0
        for half in (slice(0, 4), slice(4, 8)):
            logits, aux = t.model(x[half])
            total = total + (t.objective.loss(logits, y[half]) + 0.4 * t.objective.loss(aux, y[half])) / 2
        total.backward()
        torch.nn.utils.clip_grad_norm_(t.model.parameters(), 5.0)
        t.optimizer.step()
    ddp = load_checkpoint(out / "model.pt")["state_dict"]
    for name, p_ref in t.model.named_parameters():
        assert torch.allclose(ddp[name], p_ref, atol=1e-5, rtol=1e-4), name
    assert math.isfinite(summary["final"]["test_loss"])


def test_train_bench_reports_the_three_rates(capsys):
    assert main(["bench", "--train", "train_fashionmnist", *GEN, "--steps", "2"]) == 0
    out = capsys.readouterr().out
    for word in ("data", "compute", "train", "x compute", "peak memory"):
        assert word in out


def test_sgnas_architecture_trains_as_a_mobile_network(tmp_path):
    """A generated-architecture file goes into `archsearch train`; the summary's size is the analytic one."""
    import random

    from archsearch.spaces.mobile.arch import MobileArch, sample_arch
    from archsearch.spaces.mobile.cost import network_cost as mobile_cost
    from archsearch.spaces.mobile.layout import build_layout, layout_record
    space = load_config(resolve_config("sgnas_fashionmnist")).space  # the layout the architecture records
    layout = build_layout(space, 1, 16)
    arch = MobileArch(sample_arch(layout, 2, True, random.Random(1)).layers, layout_record(space))
    (tmp_path / "flops.json").write_text(json.dumps({"target_flops_M": 1.0, "architecture": arch.to_dict()}))
    out = tmp_path / "run"
    rc = main(["train", "train_sgnas_fashionmnist", *GEN[:6], "data.subset=0", "data.image_size=16",
               "optim.epochs=1", "steps_per_epoch=2", "eval_batches=1", "--genotype", str(tmp_path / "flops.json"),
               # the ImageNet recipe's parts (train_sgnas_imagenet) on the small network
               "optim.optimizer=rmsprop_tf", "optim.decay_1d=false", "optim.lr=0.016", "ema_decay=0.9",
               "objective.head_dropout=0.2", "model.bn_momentum=0.001", "model.se=true", "model.act=hswish",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    expected = mobile_cost(layout, arch, num_classes=4, se=True)
    assert summary["params"] == expected.params
    assert summary["mult_adds_M"] == round((expected.conv_macs + expected.fc_macs) / 1e6, 2)
    assert "ema_test_top1" in summary["final"]
    ckpt = load_checkpoint(out / "checkpoint.pt")
    state = ckpt["optimizer"]["state"]
    assert state and all(set(s) == {"square_avg", "momentum_buffer"} for s in state.values())
    assert [g["weight_decay"] for g in ckpt["optimizer"]["param_groups"]] == [4e-4, 0.0]  # the preset's


def test_mobile_bn_momentum_and_head_dropout_reach_the_network():
    import random

    from torch import nn

    from archsearch.objectives.supervised import Supervised
    from archsearch.spaces.mobile.arch import MobileArch, sample_arch
    from archsearch.spaces.mobile.layout import build_layout, layout_record
    cfg = load_config(resolve_config("train_sgnas_fashionmnist"), schema=TrainConfig)
    cfg.model.bn_momentum, cfg.objective.head_dropout = 0.001, 0.2
    space = load_config(resolve_config("sgnas_fashionmnist")).space
    arch = MobileArch(sample_arch(build_layout(space, 1, 16), 2, True, random.Random(1)).layers, layout_record(space))
    info = type("I", (), {"num_classes": 10})()
    net = create_family("mobile").build(arch, cfg.model, 1, 16, Supervised(cfg.objective, info).build_head)
    assert {m.momentum for m in net.modules() if isinstance(m, nn.BatchNorm2d)} == {0.001}
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [0.2]
    with pytest.raises(ConfigError, match=r"objective.head_dropout must be >= 0.0 and <= 0.99, got 1.0"):
        load_config(resolve_config("train_sgnas_fashionmnist"), ["objective.head_dropout=1.0"], schema=TrainConfig)
