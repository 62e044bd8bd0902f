"""Whole searches through the CLI: run directory contents, resume after SIGKILL, bad input."""
import json
import os
import signal

import pytest
import torch
from helpers import cli, one_line_error, wait_for_checkpoint

from archsearch.cli import main
from archsearch.utils.io import file_hash, load_checkpoint

GEN = [
    "data.name=generated", "data.generated.image_size=16", "data.generated.channels=1",
    "data.generated.num_classes=4", "data.generated.num_samples=128", "data.batch_size=8",
    "space.init_channels=4", "space.layers=3", "val_batches=2", "log_every=1", "history_every=2",
]


def _search(tmp_path, *overrides, name="run"):
    out = tmp_path / name
    rc = main(["search", "darts_fashionmnist", *GEN, *overrides, "--out", str(out), "--no-progress"])
    return rc, out


def test_search_writes_a_self_describing_run_directory(tmp_path):
    rc, out = _search(tmp_path, "steps_per_epoch=3", "optim.epochs=2")
    assert rc == 0
    for f in ("config.yaml", "metrics.jsonl", "arch_history.jsonl", "checkpoint.pt", "genotype.json", "summary.json"):
        assert (out / f).is_file(), f
    assert any((out / "tb").iterdir())
    from archsearch.spaces.darts.genotype import Genotype
    Genotype.load(out / "genotype.json")
    hist = [json.loads(x) for x in (out / "arch_history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist] == [0, 2, 4, 6]
    assert torch.tensor(hist[-1]["normal"]).sum(-1).allclose(torch.ones(14))
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["step"] == 6 and set(ckpt["strategy"]) == {"alphas.normal", "alphas.reduce"}
    epochs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"genotype"' in x]
    assert len(epochs) == 2 and "val_top1" in epochs[0]




@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    common = ["search", "darts_fashionmnist", *GEN, "steps_per_epoch=5", "optim.epochs=3",
              "checkpoint_every=1", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = cli(common + ["--out", str(tmp_path / "full")], env=env)
    assert full.wait(timeout=300) == 0, full.stderr.read()

    killed = tmp_path / "killed"
    p = cli(common + ["--out", str(killed)], env=env)
    ckpt = killed / "checkpoint.pt"
    wait_for_checkpoint(ckpt, "step", 6, timeout=120)
    p.send_signal(signal.SIGKILL)
    p.wait()
    step = load_checkpoint(ckpt)["step"]
    assert 6 <= step < 15, f"kill landed at step {step}"
    assert not (killed / "summary.json").exists()
    resumed = cli(common + ["--out", str(killed)], env=env)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()

    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    b = load_checkpoint(ckpt)
    assert a["step"] == b["step"] == 15
    for k in a["strategy"]:
        assert torch.equal(a["strategy"][k], b["strategy"][k]), k
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert (tmp_path / "full" / "genotype.json").read_text() == (killed / "genotype.json").read_text()
    steps = [json.loads(x)["step"] for x in (killed / "metrics.jsonl").read_text().splitlines()
             if '"genotype"' not in x]
    assert steps == list(range(15)), "metrics lines lost or duplicated by the resume"




def test_unknown_config_key_is_one_line_error(tmp_path, capsys):
    rc, _ = _search(tmp_path, "optim.lrr=0.1")
    assert rc == 2
    assert "lrr" in one_line_error(capsys)


def test_wrong_type_is_one_line_error(tmp_path, capsys):
    rc, _ = _search(tmp_path, "optim.lr=fast")
    assert rc == 2
    assert "optim.lr" in one_line_error(capsys)


def test_unknown_preset_and_bad_yaml(tmp_path, capsys):
    assert main(["search", "no_such_preset"]) == 2
    assert "not found" in one_line_error(capsys)
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1, 2\n")
    assert main(["search", str(bad)]) == 2
    one_line_error(capsys)
    bad.write_text("strategy:\n  name: dartz\n")
    assert main(["search", str(bad), *GEN, "--out", str(tmp_path / "x")]) == 2
    assert "unknown strategy 'dartz'" in one_line_error(capsys)


def test_unknown_precision_is_one_line_error(tmp_path, capsys):
    rc, _ = _search(tmp_path, "precision=float16")
    assert rc == 2
    assert "precision: invalid value 'float16', expected one of [float32, float64]" in one_line_error(capsys)
    assert torch.get_default_dtype() == torch.float32


def test_missing_dataset_is_one_line_error(tmp_path, capsys):
    rc = main(["search", "darts_fashionmnist", "data.name=cifar10", f"data.root={tmp_path / 'nowhere'}",
               "--out", str(tmp_path / "r")])
    assert rc == 2
    assert "cifar" in one_line_error(capsys).lower()
    assert not (tmp_path / "r").exists()


def test_truncated_checkpoint_is_refused_and_kept(tmp_path, capsys):
    rc, out = _search(tmp_path, "steps_per_epoch=2", "optim.epochs=1")
    assert rc == 0
    ckpt = out / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    rc, _ = _search(tmp_path, "steps_per_epoch=2", "optim.epochs=1")
    assert rc == 2
    assert "cannot read checkpoint" in one_line_error(capsys)
    assert before == {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def test_changed_config_on_existing_run_is_refused(tmp_path, capsys):
    rc, out = _search(tmp_path, "steps_per_epoch=2", "optim.epochs=1")
    assert rc == 0
    rc, _ = _search(tmp_path, "steps_per_epoch=2", "optim.epochs=1", "optim.lr=0.5")
    assert rc == 2
    assert "optim.lr" in one_line_error(capsys)


def test_a_changed_colorization_bins_file_is_refused_on_resume(tmp_path, capsys):
    bins = tmp_path / "bins.json"
    bins.write_text(json.dumps({"bins": [[0, 0], [10, 10], [-20, 30]]}))
    color = ["data.generated.channels=3", "objective.name=colorization", f"objective.bins={bins}",
             "steps_per_epoch=1", "optim.epochs=1"]
    rc, out = _search(tmp_path, *color)
    assert rc == 0
    inputs = json.loads((out / "run.json").read_text())["inputs"]
    assert inputs == {"file (objective.bins)": file_hash(bins)}
    rc, _ = _search(tmp_path, *color)  # the same file: the finished run is accepted again
    assert rc == 0
    bins.write_text(json.dumps({"bins": [[0, 0], [10, 10], [-20, 30], [20, -10]]}))
    kept = (out / "checkpoint.pt").read_bytes()
    rc, _ = _search(tmp_path, *color)
    assert rc == 2
    assert "another file (objective.bins)" in one_line_error(capsys)
    assert (out / "checkpoint.pt").read_bytes() == kept
    bins.unlink()
    rc, _ = _search(tmp_path, *color, name="missing")
    assert rc == 2
    assert f"cannot read objective.bins file {bins}" in one_line_error(capsys)
    assert not (tmp_path / "missing").exists()


def test_training_identity_holds_the_files_its_components_read(tmp_path):
    from archsearch.config import TrainConfig, load_config
    from archsearch.engine.distributed import SINGLE_PROCESS
    from archsearch.engine.loop import RunLoop
    from archsearch.presets import resolve_config

    bins = tmp_path / "bins.json"
    bins.write_text(json.dumps({"bins": [[0, 0], [10, 10]]}))
    cfg = load_config(resolve_config("train_fashionmnist"), ["model.genotype=DARTS_V2", "objective.name=colorization",
                                                              f"objective.bins={bins}"], schema=TrainConfig)
    loop = RunLoop(tmp_path / "run", "train", cfg, SINGLE_PROCESS, {"architecture (model.genotype)": "a1"})
    assert loop.run.identity["inputs"] == {"architecture (model.genotype)": "a1",
                                           "file (objective.bins)": file_hash(bins)}
    plain = load_config(resolve_config("train_fashionmnist"), ["model.genotype=DARTS_V2"], schema=TrainConfig)
    assert RunLoop(tmp_path / "other", "train", plain, SINGLE_PROCESS).run.identity["inputs"] == {}


def test_checkpoint_is_loadable_with_weights_only(tmp_path):
    rc, out = _search(tmp_path, "steps_per_epoch=1", "optim.epochs=1")
    assert rc == 0
    torch.load(out / "checkpoint.pt", weights_only=True)


def test_nan_loss_stops_with_one_line_error(tmp_path, capsys):
    rc, out = _search(tmp_path, "steps_per_epoch=4", "optim.epochs=1", "optim.lr=1e30", "optim.grad_clip=0")
    assert rc == 2
    assert "became" in one_line_error(capsys)
    assert not (out / "summary.json").exists()


def test_list_command(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("darts-s4", "pcdarts", "milenas", "supervised", "fashion-mnist", "DARTS_V2", "darts_fashionmnist"):
        assert name in out


def test_checkpoint_without_run_record_is_refused(tmp_path, capsys):
    rc, out = _search(tmp_path, "steps_per_epoch=1", "optim.epochs=1")
    assert rc == 0
    (out / "run.json").unlink()
    ckpt = (out / "checkpoint.pt").read_bytes()
    rc, _ = _search(tmp_path, "steps_per_epoch=1", "optim.epochs=1")
    assert rc == 2
    assert "holds no run.json" in one_line_error(capsys)
    assert (out / "checkpoint.pt").read_bytes() == ckpt


@pytest.mark.parametrize("impl", ["fast", "batched"])
def test_bf16_search_derives_a_valid_genotype(tmp_path, impl):
    from archsearch.spaces.darts.genotype import Genotype

    rc, out = _search(tmp_path, "amp=bf16", f"space.impl={impl}", "steps_per_epoch=3", "optim.epochs=1")
    assert rc == 0
    g = Genotype.load(out / "genotype.json")
    assert len(g.normal) == len(g.reduce) == 8
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert all(v.dtype == torch.float32 for v in ckpt["strategy"].values() if v.is_floating_point())


def test_bf16_and_float64_together_are_refused(tmp_path, capsys):
    rc, out = _search(tmp_path, "amp=bf16", "precision=float64")
    assert rc == 2 and "amp=bf16 and precision=float64" in one_line_error(capsys)
    assert not out.exists()


def test_a_closed_pipe_ends_quietly():
    """`archsearch list -v | head`: once the reader has gone, no error line, no traceback, exit 141."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "archsearch", "list", "-v"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    p.stdout.close()  # long before the child, still importing, prints anything
    err = p.stderr.read()
    assert p.wait(timeout=120) == 141 and err == ""


def _as_if_older(out, drop: str, value=None) -> None:
    """Rewrite a run's records as an archsearch without top-level option `drop` would have written
    them (with `value` set instead, an option whose recorded value differs from today's default)."""
    from archsearch.utils.io import atomic_torch_save, content_hash

    def older(identity: dict) -> dict:
        config = {k: v for k, v in identity["config"].items() if k != drop}
        if value is not None:
            config["seed"] = value
        ident = {k: identity[k] for k in ("format", "kind", "inputs")} | {"config": config}
        return {**ident, "digest": content_hash(ident)}

    record = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps(older(record)))
    ckpt = load_checkpoint(out / "checkpoint.pt")
    ckpt["run"] = older(ckpt["run"])
    atomic_torch_save(out / "checkpoint.pt", ckpt)


def test_a_run_of_an_older_version_resumes_when_the_new_options_are_at_their_defaults(tmp_path, capsys):
    rc, out = _search(tmp_path, "steps_per_epoch=2", "optim.epochs=2", "checkpoint_every=2")
    assert rc == 0
    (out / "summary.json").unlink()  # as if killed after its last checkpoint
    genotype = (out / "genotype.json").read_text()
    _as_if_older(out, "channels_last")
    rc, _ = _search(tmp_path, "steps_per_epoch=2", "optim.epochs=2", "checkpoint_every=2")
    assert rc == 0 and (out / "summary.json").is_file()
    assert (out / "genotype.json").read_text() == genotype
    assert "channels_last" not in json.loads((out / "run.json").read_text())["config"]  # its identity is kept
    # an option set away from its default is a different run, as before
    rc, _ = _search(tmp_path, "steps_per_epoch=2", "optim.epochs=2", "checkpoint_every=2", "channels_last=true")
    assert rc == 2 and "different config (channels_last)" in one_line_error(capsys)
    # and a recorded value that differs from this run's is refused even when an option is missing
    _as_if_older(out, "compile", value=7)
    rc, _ = _search(tmp_path, "steps_per_epoch=2", "optim.epochs=2", "checkpoint_every=2")
    assert rc == 2 and "different config" in one_line_error(capsys)
