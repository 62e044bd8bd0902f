"""UnNAS search presets keep the protocol's numbers (docs/methods/unnas.md §4.1); the shuffled portion split."""
import pytest

from archsearch.config import DataConfig, GeneratedDataConfig, load_config
from archsearch.data import build_search_data
from archsearch.objectives.jigsaw import tile_geometry
from archsearch.presets import PRESETS

# name: (objective, batch, weight lr, alpha lr, epochs, alpha frozen until, weight decay, cells)
PROTOCOL = {
    "unnas_cls_in1k": ("supervised", 64, 0.1, 3e-4, 2, 1.0, 3e-5, 8),
    "unnas_rot_in1k": ("rotation", 32, 0.05, 1.5e-4, 2, 1.0, 3e-5, 8),
    "unnas_col_in1k": ("colorization", 64, 0.1, 3e-4, 2, 1.0, 3e-5, 8),
    "unnas_jig_in1k": ("jigsaw", 32, 0.05, 1.5e-4, 2, 1.0, 3e-5, 8),
    "unnas_cls_in22k": ("supervised", 256, 0.4, 1.2e-3, 1, 0.0, 3e-5, 8),
    "unnas_rot_in22k": ("rotation", 128, 0.2, 6e-4, 1, 0.0, 3e-5, 8),
    "unnas_col_in22k": ("colorization", 256, 0.4, 1.2e-3, 1, 0.0, 3e-5, 8),
    "unnas_jig_in22k": ("jigsaw", 128, 0.2, 6e-4, 1, 0.0, 3e-5, 8),
    "unnas_rot_cityscapes": ("rotation", 16, 0.05, 1.5e-4, 400, 0.0, 3e-4, 12),
    "unnas_col_cityscapes": ("colorization", 16, 0.05, 1.5e-4, 400, 0.0, 3e-4, 12),
    "unnas_jig_cityscapes": ("jigsaw", 32, 0.1, 3e-4, 400, 0.0, 3e-4, 12),
}


@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_unnas_preset_follows_the_protocol(name):
    cfg = load_config(PRESETS / f"{name}.yaml")
    objective, batch, lr, arch_lr, epochs, frozen, wd, cells = PROTOCOL[name]
    assert cfg.objective.name == objective
    assert (cfg.data.batch_size, cfg.optim.lr, cfg.strategy.arch_lr) == (batch, lr, arch_lr)
    assert (cfg.optim.epochs, cfg.strategy.arch_freeze_epochs, cfg.optim.weight_decay) == (epochs, frozen, wd)
    assert (cfg.space.layers, cfg.space.init_channels, cfg.space.stem) == (cells, 16, "imagenet")
    assert (cfg.strategy.name, cfg.strategy.order, cfg.strategy.arch_betas) == ("darts", 1, [0.5, 0.999])
    assert (cfg.optim.lr_min, cfg.optim.momentum, cfg.optim.grad_clip) == (0.0, 0.9, 5.0)
    # image folders are in class order: shuffled before the cut; cityscapes has its own fixed order
    city = cfg.data.name == "cityscapes"
    assert (cfg.data.split, cfg.data.train_portion, cfg.data.shuffle_split) == ("portion", 0.5, not city)
    if city:  # the same data and split as the NAS-DARTS counterpart
        seg = load_config(PRESETS / "darts_cityscapes_seg.yaml")
        assert (cfg.data.image_size, cfg.data.segmentation.base_size, cfg.seed) == (321, 512, seg.seed)
        assert cfg.data.segmentation.lighting == (0.0 if objective == "colorization" else 0.1)
    if objective == "jigsaw":
        j = cfg.objective
        assert (j.grid, j.num_permutations, j.gray_prob) == (3, 1000, 0.3)
        cell, tile = tile_geometry(cfg.data.image_size, j.grid, j.tile_fraction, j.tile_size)
        assert (cell, tile) == ((85, 64) if "in" in name.split("_")[2] else (107, 81))


def test_quick_fashion_mnist_presets():
    rot = load_config(PRESETS / "unnas_rot_fashionmnist.yaml")
    jig = load_config(PRESETS / "unnas_jig_fashionmnist.yaml")
    assert rot.objective.name == "rotation" and jig.objective.name == "jigsaw"
    assert rot.data.name == jig.data.name == "fashion-mnist"
    j = jig.objective
    assert (j.grid, jig.data.image_size) == (2, 28)
    assert tile_geometry(28, j.grid, j.tile_fraction, j.tile_size) == (14, 10)  # floor(0.76 * 14)


def test_shuffled_portion_split_is_seeded_disjoint_and_complete():
    gen = GeneratedDataConfig(channels=1, image_size=8, num_classes=4, num_samples=40)
    cfg = DataConfig(name="generated", generated=gen, batch_size=4, shuffle_split=True, subset=30)
    a, b = build_search_data(cfg, seed=5), build_search_data(cfg, seed=5)
    train, val = a.train.indices.tolist(), a.val.indices.tolist()
    assert len(train) == len(val) == 15 and not set(train) & set(val)
    assert train != list(range(15)) and max(train + val) >= 30  # shuffled before the subset is taken
    assert train == b.train.indices.tolist()
    assert train != build_search_data(cfg, seed=6).train.indices.tolist()
