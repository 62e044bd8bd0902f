"""Every shipped preset parses, builds its full-size supernet and runs two steps.

The datasets of the paper presets are not available here, so the data is swapped for generated
images of the same shape (channels, resolution, classes); everything else is the preset's own.
"""

import pytest

from archsearch.cli import PRESETS, main
from archsearch.config import load_config

SHAPES = {"cifar10": (3, 32, 10), "cifar100": (3, 32, 100), "imagenet": (3, 224, 1000),
          "fashion-mnist": (1, 28, 10), "imagefolder": (3, 224, 1000)}
PRESET_NAMES = sorted(p.stem for p in PRESETS.glob("*.yaml"))


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_runs_two_steps_on_data_of_its_shape(name, tmp_path):
    cfg = load_config(PRESETS / f"{name}.yaml")
    assert cfg.name == name
    channels, size, classes = SHAPES[cfg.data.name]
    if cfg.data.image_size:
        size = cfg.data.image_size
    rc = main([
        "search", name, "data.name=generated", "data.split=portion", f"data.generated.channels={channels}",
        f"data.generated.image_size={size}", f"data.generated.num_classes={classes}",
        "data.generated.num_samples=16", "data.image_size=0", "data.batch_size=2", "data.val_batch_size=2",
        "data.subset=0", "data.num_workers=0", "steps_per_epoch=1", "optim.epochs=2",
        "strategy.warmup_epochs=0", "val_batches=1", "strategy.num_candidates=2",
        "strategy.candidate_batches=1", "--out", str(tmp_path / name), "--no-progress",
    ])
    assert rc == 0
    assert (tmp_path / name / "genotype.json").is_file()


def test_paper_presets_keep_the_papers_numbers():
    d1 = load_config(PRESETS / "darts1_cifar10.yaml")
    assert (d1.optim.lr, d1.optim.lr_min, d1.data.batch_size, d1.strategy.arch_lr) == (0.025, 0.001, 64, 3e-4)
    assert (d1.space.init_channels, d1.space.layers, d1.optim.epochs) == (16, 8, 50)
    assert load_config(PRESETS / "darts2_cifar10.yaml").strategy.order == 2
    pc = load_config(PRESETS / "pcdarts_cifar10.yaml")
    assert (pc.space.partial_channels, pc.data.batch_size, pc.optim.lr, pc.strategy.arch_lr) == (4, 256, 0.1, 6e-4)
    assert pc.strategy.warmup_epochs == 15 and pc.strategy.name == "pcdarts"
    pci = load_config(PRESETS / "pcdarts_imagenet.yaml")
    assert (pci.space.partial_channels, pci.strategy.warmup_epochs, pci.strategy.arch_grad_clip) == (2, 35, 5.0)
    m = load_config(PRESETS / "milenas1_cifar10.yaml")
    assert (m.strategy.name, m.strategy.lam, m.strategy.order) == ("milenas", 1.0, 1)
    for k in range(1, 5):
        s = load_config(PRESETS / f"darts2_s{k}_cifar10.yaml")
        assert s.space.name == f"darts-s{k}" and s.strategy.order == 2
