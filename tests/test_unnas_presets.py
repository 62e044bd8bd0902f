"""UnNAS presets: the jigsaw tiles they cut (their numbers are in test_preset_values.py); the shuffled split."""
import pytest

from archsearch.config import DataConfig, GeneratedDataConfig, load_config
from archsearch.data import build_search_data
from archsearch.objectives.jigsaw import tile_geometry
from archsearch.presets import PRESETS


@pytest.mark.parametrize("name,cell_tile", [
    ("unnas_jig_in1k", (85, 64)), ("unnas_jig_in22k", (85, 64)),  # 255 px crops in 3x3 cells
    ("unnas_jig_cityscapes", (107, 81)),  # the reference's 81 px tiles
    ("unnas_jig_fashionmnist", (14, 10)),  # 2x2 cells of 14 px, floor(0.76 * 14)
])
def test_jigsaw_presets_cut_the_reference_tiles(name, cell_tile):
    cfg = load_config(PRESETS / f"{name}.yaml")
    j = cfg.objective
    assert tile_geometry(cfg.data.image_size, j.grid, j.tile_fraction, j.tile_size) == cell_tile


def test_shuffled_portion_split_is_seeded_disjoint_and_complete():
    gen = GeneratedDataConfig(channels=1, image_size=8, num_classes=4, num_samples=40)
    cfg = DataConfig(name="generated", generated=gen, batch_size=4, shuffle_split=True, subset=30)
    a, b = build_search_data(cfg, seed=5), build_search_data(cfg, seed=5)
    train, val = a.train.indices.tolist(), a.val.indices.tolist()
    assert len(train) == len(val) == 15 and not set(train) & set(val)
    assert train != list(range(15)) and max(train + val) >= 30  # shuffled before the subset is taken
    assert train == b.train.indices.tolist()
    assert train != build_search_data(cfg, seed=6).train.indices.tolist()
