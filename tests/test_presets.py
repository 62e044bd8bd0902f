"""Every shipped preset parses, builds its full-size supernet and runs two steps.

The datasets of the paper presets are not available here, so the data is swapped for generated
images of the same shape (channels, resolution, classes); everything else is the preset's own.
"""
import dataclasses
import json
import random

import pytest

from archsearch.cli import main
from archsearch.config import TrainConfig, load_config
from archsearch.presets import PRESETS
from archsearch.studies.config import CorrelateConfig, StudyConfig

SHAPES = {"cifar10": (3, 32, 10), "cifar100": (3, 32, 100), "imagenet": (3, 224, 1000),
          "fashion-mnist": (1, 28, 10), "imagefolder": (3, 224, 1000),
          "cityscapes": (3, 321, 19)}
ALL = sorted(p.stem for p in PRESETS.glob("*.yaml"))
# train_* are training recipes, correlate_* and study_* studies, each with its own schema
PRESET_NAMES = [n for n in ALL if not n.startswith(("train_", "correlate_", "study_"))]
TRAIN_PRESETS = [n for n in ALL if n.startswith("train_")]


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_runs_two_steps_on_data_of_its_shape(name, tmp_path):
    cfg = load_config(PRESETS / f"{name}.yaml")
    assert cfg.name == name
    if cfg.objective.name == "segmentation":
        pytest.skip("needs label maps: run on a generated Cityscapes tree in test_segmentation.py")
    channels, size, classes = SHAPES[cfg.data.name]
    if cfg.data.image_size:
        size = cfg.data.image_size
    rc = main([
        "search", name, "data.name=generated", "data.split=portion", f"data.generated.channels={channels}",
        f"data.generated.image_size={size}", f"data.generated.num_classes={classes}",
        "data.generated.num_samples=16", "data.image_size=0", "data.batch_size=2", "data.val_batch_size=2",
        "data.subset=0", "data.num_workers=0", "steps_per_epoch=1", "optim.epochs=2", "val_batches=1",
        *_strategy_overrides(cfg), "--out", str(tmp_path / name), "--no-progress",
    ])
    assert rc == 0
    assert (tmp_path / name / "genotype.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAIN_PRESETS)
def test_training_preset_builds_its_full_size_network_and_trains_a_step(name, tmp_path):
    cfg = load_config(PRESETS / f"{name}.yaml", schema=TrainConfig)
    assert cfg.name == name
    if cfg.objective.name == "segmentation":
        pytest.skip("needs label maps: run on a generated Cityscapes tree in test_segmentation.py")
    channels, size, classes = SHAPES[cfg.data.name]
    size = cfg.data.image_size or size
    genotype = "DARTS_V2"
    if cfg.model.name == "mobile":  # an SGNAS architecture of the preset's layout
        genotype = str(tmp_path / "arch.json")
        (tmp_path / "arch.json").write_text(json.dumps(_mobile_arch(cfg, channels, size).to_dict()))
    rc = main([
        "train", name, "--genotype", genotype, "data.name=generated", f"data.generated.channels={channels}",
        f"data.generated.image_size={size}", f"data.generated.num_classes={classes}",
        "data.generated.num_samples=8", "data.image_size=0", "data.batch_size=2", "data.val_batch_size=2",
        "data.subset=0", "data.num_workers=0", "steps_per_epoch=1", "optim.epochs=1", "optim.lr_warmup_epochs=0",
        "eval_batches=1", "--out", str(tmp_path / name), "--no-progress",
    ])
    assert rc == 0


def _strategy_overrides(cfg) -> list[str]:
    """Short-run settings for the options the preset's strategy has."""
    short = {"arch_freeze_epochs": 0, "supernet_epochs": 1}
    own = {f.name for f in dataclasses.fields(cfg.strategy)}
    out = [f"strategy.{k}={v}" for k, v in short.items() if k in own]
    if cfg.strategy.name == "random":
        out += ["strategy.selection.samples=2", "strategy.selection.batches=1"]
    return out


def _mobile_arch(cfg, channels, size):
    """A random architecture of the preset's layout; the Fashion-MNIST preset inherits its search's."""
    from archsearch.spaces.mobile.arch import MobileArch, sample_arch
    from archsearch.spaces.mobile.layout import build_layout, layout_record

    layout_cfg, record = cfg.model, None
    if cfg.name == "train_sgnas_fashionmnist":
        layout_cfg = load_config(PRESETS / "sgnas_fashionmnist.yaml").space
        record = layout_record(layout_cfg)
    arch = sample_arch(build_layout(layout_cfg, channels, size), layout_cfg.min_expansion, True, random.Random(0))
    return MobileArch(arch.layers, record)


def test_correlate_presets_parse_and_sample():
    from archsearch.studies.correlate import sample_archs
    for name in (n for n in ALL if n.startswith("correlate_")):
        cfg = load_config(PRESETS / f"{name}.yaml", schema=CorrelateConfig)
        assert cfg.name == name and cfg.train.model.name == "darts-cifar"
        cfg.num_archs = 3
        assert len(sample_archs(cfg)) == 3


def test_study_presets_plan_every_run(tmp_path):
    from archsearch.studies.study import plan_study
    for name in (n for n in ALL if n.startswith("study_")):
        cfg = load_config(PRESETS / f"{name}.yaml", schema=StudyConfig)
        plan = plan_study(cfg, tmp_path / name)  # every search and training config resolved and checked
        searches = len(cfg.searches) * len(cfg.search_seeds)
        found = sum(max(len(s.selections), 1) for s in cfg.searches) * len(cfg.search_seeds)
        derived = found - searches if all(s.selections for s in cfg.searches) else 0
        scorings = searches if cfg.ranking.enabled and cfg.baselines.random else 0
        archs = found + cfg.baselines.random + len(cfg.baselines.published)
        assert cfg.name == name
        assert len(plan.jobs) == searches + derived + scorings + archs * len(cfg.retrain.seeds)
        assert not (tmp_path / name).exists()
