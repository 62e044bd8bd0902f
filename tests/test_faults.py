"""Bad inputs and faults through the CLI.

Every case must end with exit code 2, exactly one stderr line `archsearch: error: ...`, no
traceback, and every file that was in the watched directory before byte-identical afterwards (no
new files either, unless the case is a fault that strikes once the run has started). The kill tests
SIGKILL real runs before their first checkpoint and check that rerunning the same command gives
the uninterrupted run bit for bit. Config-value cases live with the config schema's tests.
"""
from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import shutil
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
import torch
from PIL import Image

from archsearch.cli import main
from archsearch.errors import DataError
from archsearch.utils.io import load_checkpoint

SGEN = ["data.name=generated", "data.generated.image_size=16", "data.generated.channels=1",
        "data.generated.num_classes=4", "data.generated.num_samples=128", "data.batch_size=8",
        "space.init_channels=4", "space.layers=3", "val_batches=2", "log_every=1", "history_every=2"]
TGEN = ["data.name=generated", "data.generated.image_size=16", "data.generated.channels=1",
        "data.generated.num_classes=4", "data.generated.num_samples=96", "data.batch_size=8",
        "data.val_batch_size=16", "model.init_channels=4", "model.layers=3", "data.subset=0"]
SEARCH = ["search", "darts_fashionmnist", *SGEN, "steps_per_epoch=2", "optim.epochs=1", "--no-progress"]
TRAIN = ["train", *TGEN, "optim.epochs=1", "steps_per_epoch=2", "eval_batches=1", "--no-progress"]
# the mobile model has no DARTS sizes (an option of another model is itself an error)
TRAIN_MOBILE = ["train", "train_sgnas_fashionmnist", *(a for a in TGEN if not a.startswith("model.")),
                "optim.epochs=1", "steps_per_epoch=2", "eval_batches=1", "--no-progress"]
IMAGES = ["data.name=imagefolder", "data.image_size=8", "data.batch_size=2", "data.val_batch_size=2"]
GLOO_RESET = ("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:2198: "
              "Connection reset by peer")


def tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file below root."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


# -- shared artefacts, built once ---------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Finished tiny runs the cases copy: two searches and two trainings (other seeds)."""
    base = tmp_path_factory.mktemp("built")
    runs = {}
    for name, argv in {
        "search": [*SEARCH, "seed=2"],
        "search_seed3": [*SEARCH, "seed=3"],
        "train": [*TRAIN, "--genotype", "DARTS_V2", "seed=0"],
        "train_seed1": [*TRAIN, "--genotype", "DARTS_V2", "seed=1"],
    }.items():
        assert main([*argv, "--out", str(base / name)]) == 0, name
        runs[name] = base / name
    return runs


@dataclass
class Ctx:
    tmp: Path  # watched: what a case puts here must stay as it was
    aux: Path  # not watched (caches)
    built: dict
    monkeypatch: pytest.MonkeyPatch

    def clone(self, name: str, to: str = "run") -> Path:
        return Path(shutil.copytree(self.built[name], self.tmp / to))


@dataclass
class Case:
    argv: list
    needle: str  # must appear in the error line
    creates: bool = False  # a fault striking once the run started: new files allowed, old ones unchanged
    after: Optional[Callable[[], None]] = None  # further checks
    watch: Optional[Path] = None
    absent: list = field(default_factory=lambda: ["Traceback", "weights_only"])


CASES: dict[str, Callable[[Ctx], Case]] = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


# -- config values, refused when the config loads (before the run directory is touched) ---------
BAD_SEARCH_VALUES = {
    "log_every_0": ("log_every=0", "log_every must be >= 1, got 0"),
    "checkpoint_every_0": ("checkpoint_every=0", "checkpoint_every must be >= 1, got 0"),
    "history_every_0": ("history_every=0", "history_every must be >= 1, got 0"),
    "epochs_negative": ("optim.epochs=-1", "optim.epochs must be >= 1, got -1"),
    "steps_per_epoch_negative": ("steps_per_epoch=-5", "steps_per_epoch must be >= 0, got -5"),
    "subset_negative": ("data.subset=-1", "data.subset must be >= 0, got -1"),
    "image_size_negative": ("data.image_size=-3", "data.image_size must be >= 0, got -3"),
    "image_size_too_small": ("data.image_size=1", "it needs at least 4 px"),
    "lr_negative": ("optim.lr=-0.1", "optim.lr must be > 0.0, got -0.1"),
    "lr_nan": ("optim.lr=nan", "optim.lr must be a finite number"),
    "one_element_arch_betas": ("strategy.arch_betas=[0.5]", "arch_betas must be two numbers"),
    "layers_2": ("space.layers=2", "leaves no normal cell"),
    "layers_1": ("space.layers=1", "leaves no normal cell"),
    "nodes_0": ("space.nodes=0", "space.nodes must be >= 1, got 0"),
    "order_3": ("strategy.order=3", "strategy.order must be >= 1 and <= 2, got 3"),
    "stem_unknown": ("space.stem=huge", "space.stem: invalid value 'huge'"),
    "option_of_another_strategy": ("strategy.vimnas.noise=0", "strategy.vimnas is not an option of strategy 'darts'"),
    "strategy_on_a_space_it_does_not_search": ("space.name=mobile-unified",
                                               "space.init_channels is not an option of space 'mobile-unified'"),
    "portion_above_1": ("data.train_portion=1.5", "data.train_portion must be > 0.0 and <= 1.0, got 1.5"),
    "bool_for_an_int": ("seed=true", "seed"),
}


def _bad_value_case(override: str, needle: str):
    def make(c):
        return Case([*SEARCH, override, "--out", str(c.tmp / "run")], needle)
    return make


for _name, (_override, _needle) in BAD_SEARCH_VALUES.items():
    CASES[f"search_value_{_name}"] = _bad_value_case(_override, _needle)


@case
def correlate_zero_archs(c):
    return Case(["correlate", "correlate_fashionmnist", "num_archs=0", "--out", str(c.tmp / "study")],
                "num_archs must be >= 2, got 0")


@case
def train_drop_path_1(c):
    return Case([*TRAIN, "--genotype", "DARTS_V2", "model.drop_path=1.0", "--out", str(c.tmp / "run")],
                "model.drop_path must be >= 0.0 and <= 0.99, got 1.0")


def image_tree(root: Path, classes: int = 2, bad: Optional[str] = None) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    if bad:
        path = root / bad
        path.write_bytes(path.read_bytes()[:40])  # a PNG cut short
    return root


def fashion_mnist(root: Path, damage: Optional[str] = None) -> Path:
    """The four idx.gz files with a few random images; `damage` truncates or replaces one."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 32), ("t10k", 16)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, (n,), dtype=np.uint8)
        for name, head, arr in ((f"{split}-images-idx3-ubyte", struct.pack(">IIII", 0x803, n, 28, 28), images),
                                (f"{split}-labels-idx1-ubyte", struct.pack(">II", 0x801, n), labels)):
            with gzip.open(root / f"{name}.gz", "wb") as f:
                f.write(head + arr.tobytes())
    target = root / "train-images-idx3-ubyte.gz"
    if damage == "truncated":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "not gzip":
        target.write_bytes(b"these bytes are no gzip stream")
    return root


def deep_json(path: Path) -> Path:
    path.write_text("[" * 100_000 + "]" * 100_000)
    return path


def save_untrusted(path: Path) -> None:
    torch.save({"format": 1, "kind": "model", "hook": print}, path)  # a global a weights-only load refuses


def all_finite(path: Path) -> None:
    ckpt = load_checkpoint(path)
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())


# -- search ---------------------------------------------------------------------------------------
@case
def search_out_names_a_file(c):
    (c.tmp / "file").write_text("mine")
    return Case([*SEARCH, "--out", str(c.tmp / "file")], "is a file")


@case
def search_out_below_a_file(c):
    (c.tmp / "file").write_text("mine")
    return Case([*SEARCH, "--out", str(c.tmp / "file" / "run")], "is a file")


@case
def search_out_not_writable(c):
    c.monkeypatch.setattr(os, "access", lambda *a, **k: False)
    return Case([*SEARCH, "--out", str(c.tmp / "run")], "cannot write in")


@case
def search_read_only_file_system(c):
    def refuse(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), k.get("dir"))
    c.monkeypatch.setattr("archsearch.utils.io.tempfile.mkstemp", refuse)
    return Case([*SEARCH, "--out", str(c.tmp / "run")], "Read-only file system")


@case
def search_permission_denied_at_write(c):
    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), k.get("dir"))
    c.monkeypatch.setattr("archsearch.utils.io.tempfile.mkstemp", refuse)
    return Case([*SEARCH, "--out", str(c.tmp / "run")], "Permission denied")


@case
def search_disk_full(c):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    c.monkeypatch.setattr("archsearch.utils.io.os.fsync", full)
    return Case([*SEARCH, "--out", str(c.tmp / "run")], "run.json: No space left on device")


@case
def search_other_config_before_first_checkpoint(c):
    run = c.clone("search")
    for f in ("checkpoint.pt", "summary.json"):  # as a run killed before its first checkpoint leaves it
        (run / f).unlink()
    return Case([*SEARCH, "optim.lr=0.5", "--out", str(run)], "different config (optim.lr)")


@case
def search_other_config_after_checkpoint(c):
    run = c.clone("search")
    return Case([*SEARCH, "optim.lr=0.5", "--out", str(run)], "different config (optim.lr)")


@case
def search_checkpoint_of_another_run(c):
    run = c.clone("search")
    shutil.copy(c.built["search_seed3"] / "checkpoint.pt", run / "checkpoint.pt")
    return Case([*SEARCH, "seed=2", "--out", str(run)], "belongs to another run (config differs in seed)")


@case
def search_checkpoint_without_identity(c):
    run = c.clone("search")
    ckpt = load_checkpoint(run / "checkpoint.pt")
    del ckpt["run"]
    torch.save(ckpt, run / "checkpoint.pt")
    return Case([*SEARCH, "seed=2", "--out", str(run)], "carries no run identity")


@case
def search_finished_run_without_checkpoint(c):
    run = c.clone("search")
    (run / "checkpoint.pt").unlink()
    return Case([*SEARCH, "seed=2", "--out", str(run)], "finished run (summary.json)")


@case
def search_into_a_folder_of_other_files(c):
    (c.tmp / "run").mkdir()
    (c.tmp / "run" / "notes.txt").write_text("mine")
    return Case([*SEARCH, "--out", str(c.tmp / "run")], "holds no run.json")


@case
def search_damaged_run_record(c):
    run = c.clone("search")
    text = (run / "run.json").read_text()
    (run / "run.json").write_text(text[: len(text) // 2])
    return Case([*SEARCH, "seed=2", "--out", str(run)], "run.json is not valid JSON")


@case
def search_deeply_nested_run_record(c):
    run = c.clone("search")
    deep_json(run / "run.json")
    return Case([*SEARCH, "seed=2", "--out", str(run)], "nested too deeply")


@case
def search_into_a_training_run(c):
    run = c.clone("train")
    return Case([*SEARCH, "--out", str(run)], "holds a train run, not a search run")


@case
def search_truncated_checkpoint(c):
    run = c.clone("search")
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    return Case([*SEARCH, "seed=2", "--out", str(run)], "cannot read checkpoint")


@case
def search_checkpoint_holding_python_objects(c):
    run = c.clone("search")
    save_untrusted(run / "checkpoint.pt")
    return Case([*SEARCH, "seed=2", "--out", str(run)], "refused for safety")


@case
def search_missing_data_root(c):
    return Case([*SEARCH, "data.name=fashion-mnist", f"data.root={c.tmp / 'nowhere'}", "--out", str(c.tmp / "run")],
                f"data.root {c.tmp / 'nowhere'} does not exist")


@case
def search_data_root_names_a_file(c):
    (c.tmp / "file").write_text("mine")
    return Case([*SEARCH, "data.name=cifar10", f"data.root={c.tmp / 'file'}", "--out", str(c.tmp / "run")],
                "is a file, not a folder")


@case
def search_one_class_image_folder(c):
    root = image_tree(c.tmp / "images", classes=1)
    return Case([*SEARCH, *IMAGES, "data.split=folders", f"data.root={root}", "--out", str(c.tmp / "run")],
                "needs at least 2")


@case
def search_undecodable_image(c):
    root = image_tree(c.tmp / "images", bad="val/class1/1.png")
    return Case([*SEARCH, *IMAGES, "data.split=folders", f"data.root={root}", "--out", str(c.tmp / "run")],
                f"cannot decode image {root / 'val' / 'class1' / '1.png'}")


@case
def search_truncated_fashion_mnist_gz(c):
    c.monkeypatch.setenv("XDG_CACHE_HOME", str(c.aux / "cache"))
    root = fashion_mnist(c.tmp / "fm", damage="truncated")
    return Case([*SEARCH, "data.name=fashion-mnist", f"data.root={root}", "--out", str(c.tmp / "run")],
                f"{root / 'train-images-idx3-ubyte.gz'} is truncated or damaged")


@case
def search_fashion_mnist_gz_not_gzip(c):
    c.monkeypatch.setenv("XDG_CACHE_HOME", str(c.aux / "cache"))
    root = fashion_mnist(c.tmp / "fm", damage="not gzip")
    return Case([*SEARCH, "data.name=fashion-mnist", f"data.root={root}", "--out", str(c.tmp / "run")],
                f"{root / 'train-images-idx3-ubyte.gz'} is truncated or damaged")


@case
def search_peer_lost_under_torchrun(c):
    def lost(*a, **k):
        raise RuntimeError(GLOO_RESET)
    c.monkeypatch.setenv("WORLD_SIZE", "2")
    c.monkeypatch.setenv("RANK", "1")
    c.monkeypatch.setattr("archsearch.engine.search.run_search", lost)
    return Case([*SEARCH, "--out", str(c.tmp / "run")], "rank 1 lost its connection to another rank")


@case
def search_weights_diverge_before_a_checkpoint(c):
    run = c.tmp / "run"
    return Case([*SEARCH, "steps_per_epoch=4", "optim.epochs=2", "checkpoint_every=1", "optim.lr=1e8",
                 "optim.grad_clip=0", "--out", str(run)], "the weights diverged", creates=True,
                after=lambda: all_finite(run / "checkpoint.pt"))


# -- train ----------------------------------------------------------------------------------------
def _trained(c, *args) -> Path:
    out = c.tmp / "run"
    assert main([*TRAIN, "steps_per_epoch=1", *args, "--out", str(out)]) == 0
    return out


@case
def train_other_config_on_a_finished_run(c):
    run = c.clone("train")
    return Case([*TRAIN, "optim.epochs=2", "--genotype", "DARTS_V2", "--out", str(run)],
                "different config (optim.epochs)")


@case
def train_genotype_file_edited(c):
    g = c.tmp / "cell.json"
    shutil.copy(c.built["search"] / "genotype.json", g)
    run = _trained(c, "--genotype", str(g))
    g.write_text((c.built["search_seed3"] / "genotype.json").read_text())
    return Case([*TRAIN, "steps_per_epoch=1", "--genotype", str(g), "--out", str(run)],
                "another architecture (model.genotype)")


@case
def train_search_run_moved_on(c):
    search = Path(shutil.copytree(c.built["search"], c.tmp / "search"))
    run = _trained(c, "--run", str(search))
    shutil.copy(c.built["search_seed3"] / "genotype.json", search / "genotype.json")
    return Case([*TRAIN, "steps_per_epoch=1", "--run", str(search), "--out", str(run)],
                "another architecture (model.genotype)")


@case
def train_genotype_file_gone(c):
    g = c.tmp / "cell.json"
    shutil.copy(c.built["search"] / "genotype.json", g)
    run = _trained(c, "--genotype", str(g))
    g.unlink()
    return Case([*TRAIN, "steps_per_epoch=1", "--genotype", str(g), "--out", str(run)], "genotype file not found")


@case
def train_finished_run_without_checkpoint(c):
    run = c.clone("train")
    (run / "checkpoint.pt").unlink()  # model.pt and best.pt must survive the rerun
    return Case([*TRAIN, "--genotype", "DARTS_V2", "seed=0", "--out", str(run)], "finished run (summary.json)")


@case
def train_checkpoint_of_another_run(c):
    run = c.clone("train")
    shutil.copy(c.built["train_seed1"] / "checkpoint.pt", run / "checkpoint.pt")
    return Case([*TRAIN, "--genotype", "DARTS_V2", "seed=0", "--out", str(run)],
                "belongs to another run (config differs in seed)")


@case
def train_out_names_a_file(c):
    (c.tmp / "file").write_text("mine")
    return Case([*TRAIN, "--genotype", "DARTS_V2", "--out", str(c.tmp / "file")], "is a file")


@case
def train_mobile_architecture_given_as_long_text(c):
    text = json.dumps({"layers": [[3, 5, 7] * 40] * 20})
    return Case([*TRAIN_MOBILE, "--genotype", text, "--out", str(c.tmp / "run")],
                "cannot read architecture file")


@case
def train_mobile_architecture_nested_too_deeply(c):
    path = deep_json(c.tmp / "arch.json")
    return Case([*TRAIN_MOBILE, "--genotype", str(path), "--out", str(c.tmp / "run")],
                "nested too deeply")


@case
def train_genotype_nested_too_deeply(c):
    path = deep_json(c.tmp / "cell.json")
    return Case([*TRAIN, "--genotype", str(path), "--out", str(c.tmp / "run")], "nested too deeply")


@case
def train_one_class_image_folder(c):
    root = image_tree(c.tmp / "images", classes=1)
    return Case([*TRAIN, *IMAGES, f"data.root={root}", "--genotype", "DARTS_V2", "--out", str(c.tmp / "run")],
                "needs at least 2")


@case
def train_undecodable_image_found_while_loading(c):
    """A folder too large to verify up front: the worker's decode error names the file, in one line."""
    c.monkeypatch.setattr("archsearch.data.images.VERIFY_LIMIT", 0)
    root = image_tree(c.tmp / "images", bad="train/class0/2.png")
    return Case([*TRAIN, *IMAGES, "data.num_workers=1", f"data.root={root}", "--genotype", "DARTS_V2",
                 "--out", str(c.tmp / "run")], f"cannot decode image {root / 'train' / 'class0' / '2.png'}",
                creates=True, absent=["Traceback", "Caught", "worker"])


@case
def train_truncated_fashion_mnist_gz(c):
    c.monkeypatch.setenv("XDG_CACHE_HOME", str(c.aux / "cache"))
    root = fashion_mnist(c.tmp / "fm", damage="truncated")
    return Case([*TRAIN, "data.name=fashion-mnist", f"data.root={root}", "--genotype", "DARTS_V2",
                 "--out", str(c.tmp / "run")], "is truncated or damaged")


@case
def train_missing_data_root(c):
    return Case([*TRAIN, "data.name=imagenet", f"data.root={c.tmp / 'nowhere'}", "--genotype", "DARTS_V2",
                 "--out", str(c.tmp / "run")], f"data.root {c.tmp / 'nowhere'} does not exist")


@case
def train_weights_diverge(c):
    return Case([*TRAIN, "optim.epochs=2", "optim.lr=1e8", "optim.grad_clip=0", "--genotype", "DARTS_V2",
                 "--out", str(c.tmp / "run")], "the weights diverged", creates=True)


@case
def train_peer_lost_under_torchrun(c):
    def lost(*a, **k):
        raise RuntimeError(GLOO_RESET)
    c.monkeypatch.setenv("WORLD_SIZE", "2")
    c.monkeypatch.setenv("RANK", "0")
    c.monkeypatch.setattr("archsearch.engine.train.run_train", lost)
    return Case([*TRAIN, "--genotype", "DARTS_V2", "--out", str(c.tmp / "run")],
                "run the same command again to resume from the last checkpoint")


@case
def train_loader_worker_killed(c):
    def killed(*a, **k):
        raise RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. ")
    c.monkeypatch.setattr("archsearch.engine.train.run_train", killed)
    return Case([*TRAIN, "--genotype", "DARTS_V2", "--out", str(c.tmp / "run")], "a data loader worker died")


@case
def train_disk_full(c):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    c.monkeypatch.setattr("archsearch.utils.io.os.fsync", full)
    return Case([*TRAIN, "--genotype", "DARTS_V2", "--out", str(c.tmp / "run")], "No space left on device")


@case
def train_warnings_before_a_user_error_are_held(c):
    def warn_then_fail(*a, **k):
        warnings.warn("a torch-style warning before the failure", UserWarning, stacklevel=2)
        raise DataError("the data is bad")
    c.monkeypatch.setattr("archsearch.engine.train.run_train", warn_then_fail)
    return Case([*TRAIN, "--genotype", "DARTS_V2", "--out", str(c.tmp / "run")], "the data is bad")


# -- export ---------------------------------------------------------------------------------------
@case
def export_over_its_own_input(c):
    run = c.clone("train")
    return Case(["export", str(run), "--format", "torchscript", "--output", str(run / "model.pt")],
                "is the model file being exported")


@case
def export_output_in_a_missing_folder(c):
    run = c.clone("train")
    return Case(["export", str(run), "--format", "torchscript", "--output", str(c.tmp / "no" / "m.ts")],
                "does not exist")


@case
def export_output_names_a_folder(c):
    run = c.clone("train")
    return Case(["export", str(run), "--format", "onnx", "--output", str(run)], "is a folder")


@case
def export_failed_check_keeps_the_existing_file(c):
    from archsearch.engine.export import EXPORTERS

    def wrong(model, example, out):
        Path(out).write_bytes(b"half an export")
        return model(example) + 1.0
    c.monkeypatch.setitem(EXPORTERS._items, "torchscript", wrong)
    run = c.clone("train")
    (run / "model.ts").write_bytes(b"the previous export")
    return Case(["export", str(run), "--format", "torchscript"], "model.ts left as it was")


@case
def export_model_holding_python_objects(c):
    save_untrusted(c.tmp / "model.pt")
    return Case(["export", str(c.tmp / "model.pt"), "--format", "onnx"], "refused for safety")


@case
def export_a_checkpoint_not_a_model(c):
    run = c.clone("train")
    return Case(["export", str(run / "checkpoint.pt"), "--format", "onnx"], "is not a model file")


@case
def export_truncated_model(c):
    run = c.clone("train")
    data = (run / "model.pt").read_bytes()
    (run / "model.pt").write_bytes(data[:1000])
    return Case(["export", str(run), "--format", "onnx"], "cannot read checkpoint")


@case
def export_run_without_model(c):
    run = c.clone("train")
    (run / "model.pt").unlink()
    return Case(["export", str(run), "--format", "onnx"], "checkpoint not found")


# -- generate, bench --------------------------------------------------------------------------------
for _value in ("nan", "inf", "-5", "0"):
    def _generate(c, value=_value):
        return Case(["generate", str(c.clone("search")), "--flops", "300", "--flops", value],
                    "positive, finite MFLOPs")
    _generate.__name__ = f"generate_flops_{_value.replace('-', 'minus')}"
    CASES[_generate.__name__] = _generate


@case
def bench_zero_steps(c):
    return Case(["bench", "darts_fashionmnist", *SGEN, "--steps", "0"], "--steps must be at least 1")


@case
def bench_train_negative_steps(c):
    return Case(["bench", "--train", "train_fashionmnist", *TGEN, "--steps", "-1"], "--steps must be at least 1")


# -- plot ------------------------------------------------------------------------------------------
def _fake_run(c, preset: str, *overrides, schema=None) -> Path:
    """A run directory with only a config.yaml (plot reads nothing else before refusing)."""
    from archsearch.config import SearchConfig, load_config, to_yaml
    from archsearch.presets import resolve_config

    run = c.tmp / "run"
    run.mkdir()
    (run / "config.yaml").write_text(to_yaml(load_config(resolve_config(preset), list(overrides),
                                                         schema=schema or SearchConfig)))
    return run


@case
def plot_a_training_run(c):
    return Case(["plot", str(c.clone("train"))], "is a training run")


@case
def plot_a_random_search_before_its_result(c):
    return Case(["plot", str(_fake_run(c, "random_fashionmnist"))], "neither an architecture history nor a derived")


@case
def plot_an_sgnas_search_before_its_first_epoch(c):
    return Case(["plot", str(_fake_run(c, "sgnas_fashionmnist"))], "neither an architecture history nor a derived")


@case
def plot_a_correlation_study(c):
    from archsearch.studies.config import CorrelateConfig

    return Case(["plot", str(_fake_run(c, "correlate_fashionmnist", schema=CorrelateConfig))],
                "is a correlation study")


@case
def plot_a_folder_that_is_no_run(c):
    (c.tmp / "notes.txt").write_text("mine")
    return Case(["plot", str(c.tmp)], "is not a run directory")


# -- genotype ---------------------------------------------------------------------------------------
@case
def genotype_output_names_a_folder(c):
    return Case(["genotype", "DARTS_V2", "--to", "json", "--output", str(c.tmp)], "is a folder, not a file")


@case
def genotype_output_below_a_file(c):
    (c.tmp / "file").write_text("mine")
    return Case(["genotype", "DARTS_V2", "--output", str(c.tmp / "file" / "g.json")], "is a file, not a folder")


@case
def genotype_file_nested_too_deeply(c):
    return Case(["genotype", str(deep_json(c.tmp / "g.json"))], "nested too deeply")


def _cell_text(index, concat=4) -> str:
    g = {"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", index]] * 4, "normal_concat": [2, 3, concat, 5],
         "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]] * 4, "reduce_concat": [2, 3, 4, 5]}
    return json.dumps(g)


@case
def genotype_boolean_node_index(c):
    return Case(["genotype", _cell_text(True)], "expected [op_name, input_index]")


@case
def genotype_boolean_concat_state(c):
    return Case(["genotype", _cell_text(1, concat=True)], "normal_concat")


@case
def train_boolean_node_index(c):
    return Case([*TRAIN, "--genotype", _cell_text(True), "--out", str(c.tmp / "run")], "input_index")


@case
def search_out_name_too_long(c):
    return Case([*SEARCH, "--out", str(c.tmp / ("x" * 300))], "File name too long")


def test_genotype_text_longer_than_a_file_name_is_read_as_text(capsys):
    """The originals' Genotype(...) repr pasted on the command line is no file name (ENAMETOOLONG)."""
    from archsearch.spaces.darts.formats import write_genotype
    from archsearch.spaces.darts.genotype import published_genotypes

    text = write_genotype(published_genotypes()["DARTS_V2"], "darts").strip() + " " * 300
    assert len(text) > 255 and main(["genotype", text]) == 0
    assert "normal" in capsys.readouterr().out


# -- correlate --------------------------------------------------------------------------------------
def _study(c, *overrides, table: Optional[Path] = None) -> tuple[list, Path]:
    """A study directory as `run_correlate` starts it (run.json, config.yaml), without training."""
    from archsearch.config import load_config, to_yaml
    from archsearch.engine.rundir import RunDir
    from archsearch.presets import resolve_config
    from archsearch.studies.config import CorrelateConfig
    from archsearch.studies.correlate import identity
    from archsearch.utils.io import file_hash

    argv = ["train.optim.epochs=1", *overrides] + ([f"table.path={table}"] if table else [])
    cfg = load_config(resolve_config("correlate_fashionmnist"), argv, schema=CorrelateConfig)
    inputs = {"architecture table (table.path)": file_hash(table)} if table else {}
    out = c.tmp / "study"
    run = RunDir(out, "correlate", identity(cfg), inputs, checkpoints=False)
    run.check()
    run.begin(to_yaml(cfg))
    return ["correlate", "correlate_fashionmnist", *argv, "--no-progress", "--out", str(out)], out


@case
def correlate_other_config(c):
    argv, _ = _study(c, "num_archs=5")
    return Case([*argv, "num_archs=6"], "different config (num_archs)")


@case
def correlate_table_edited(c):
    from archsearch.spaces.darts.formats import write_genotype
    from archsearch.spaces.darts.genotype import published_genotypes

    table = c.tmp / "table.csv"
    rows = [("genotype", "accuracy")] + [(write_genotype(g, "darts").strip(), str(90 + i))
                                         for i, g in enumerate(list(published_genotypes().values())[:3])]
    import csv

    with table.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    argv, _ = _study(c, table=table)
    table.write_text(table.read_text().replace(",92", ",12"))
    return Case(argv, "another architecture table (table.path)")


@case
def correlate_out_names_a_file(c):
    (c.tmp / "file").write_text("mine")
    return Case(["correlate", "correlate_fashionmnist", "--out", str(c.tmp / "file")], "is a file")


# -- the one test over all cases ------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_fault_is_one_line_and_leaves_files_alone(name, built, tmp_path, monkeypatch, capsys):
    (tmp_path / "w").mkdir()
    (tmp_path / "aux").mkdir()
    c = CASES[name](Ctx(tmp_path / "w", tmp_path / "aux", built, monkeypatch))
    watch = c.watch or tmp_path / "w"
    before = tree(watch)
    capsys.readouterr()
    rc = main(c.argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("archsearch: error: "), err
    assert c.needle in lines[0], lines[0]
    for word in c.absent:
        assert word not in err, err
    after = tree(watch)
    if c.creates:
        assert {k: after.get(k) for k in before} == before
    else:
        assert after == before
    assert not [p for p in watch.rglob("*.tmp")], "temporary files left behind"
    if c.after:
        c.after()


def test_export_removes_what_a_killed_export_left(built, tmp_path, capsys):
    run = Path(shutil.copytree(built["train"], tmp_path / "run"))
    stale = run / ".model.ts.k1ll3d_x.tmp"
    stale.write_bytes(b"partial")
    assert main(["export", str(run), "--format", "torchscript"]) == 0
    assert not stale.exists() and not list(run.glob(".*.tmp"))
    assert (run / "model.ts").stat().st_mode & 0o777 == (run / "model.pt").stat().st_mode & 0o777


def test_warnings_are_dropped_before_a_user_error_and_shown_as_one_line_otherwise(tmp_path, monkeypatch, capsys):
    outcome = {}

    def warn_then(*a, **k):
        warnings.warn("a torch-style warning", UserWarning, stacklevel=2)
        if outcome.get("fail"):
            raise DataError("the data is bad")
        return {}
    monkeypatch.setattr("archsearch.engine.train.run_train", warn_then)
    argv = [*TRAIN, "--genotype", "DARTS_V2", "--out", str(tmp_path / "run")]
    for fail in (True, False):
        outcome["fail"] = fail
        with warnings.catch_warnings(record=True) as seen:  # would catch what the CLI failed to hold
            warnings.simplefilter("always")
            rc = main(argv)
        lines = capsys.readouterr().err.strip().splitlines()
        assert not seen and len(lines) == 1
        assert (rc, lines[0]) == ((2, "archsearch: error: the data is bad") if fail else
                                  (0, "archsearch: warning: UserWarning: a torch-style warning"))


def test_there_are_enough_cases():
    assert len(CASES) >= 45


def test_a_bug_keeps_its_traceback_and_debug_shows_every_traceback(tmp_path, monkeypatch, capsys):
    def bug(*a, **k):
        raise ZeroDivisionError("a genuine bug")
    monkeypatch.setattr("archsearch.engine.search.run_search", bug)
    with pytest.raises(ZeroDivisionError):
        main([*SEARCH, "--out", str(tmp_path / "run")])
    monkeypatch.setenv("ARCHSEARCH_DEBUG", "1")
    assert main(["generate", str(tmp_path), "--flops", "nan"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("archsearch: error: --flops")
