"""UnNAS pretext objectives: rotation, colorization, jigsaw (docs/methods/unnas.md §1.2-1.4 and §8)."""
import itertools
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archsearch.config import ObjectiveConfig, component
from archsearch.data import DatasetInfo
from archsearch.errors import ConfigError
from archsearch.objectives import create_objective, list_objectives
from archsearch.objectives.colorization import (
    BINS_FILE,
    BinIndex,
    load_bins,
    rgb_to_lab,
)
from archsearch.objectives.jigsaw import (
    MIN_HAMMING_3X3,
    PERMS_FILE,
    JigsawHead,
    cut_tiles,
    greedy_permutations,
    permutation_set,
    shuffle_tiles,
    standardise_tiles,
)
from archsearch.objectives.rotation import rotate_all

RGB = DatasetInfo("rgb", 3, 16, 10, (0.5, 0.4, 0.3), (0.25, 0.2, 0.3))
PLAIN_RGB = DatasetInfo("plain", 3, 16, 10, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # identity normalisation
GRAY = DatasetInfo("gray", 1, 28, 10, (0.5,), (0.25,))


def objective(name, info=RGB, **jigsaw):
    return create_objective(component(ObjectiveConfig, name, **jigsaw), info)


def pairwise_hamming(perms):
    d = (perms[:, None, :] != perms[None, :, :]).sum(-1)
    return d + torch.eye(len(perms), dtype=d.dtype) * 100


# -- rotation -----------------------------------------------------------------------------------

def test_rotation_puts_all_four_rotations_of_every_image_in_the_batch_with_matching_labels():
    x = torch.randn(3, 2, 5, 5)
    inputs, labels = objective("rotation").prepare(x, torch.zeros(3, dtype=torch.long))
    assert inputs.shape == (12, 2, 5, 5) and labels.tolist() == [0, 1, 2, 3] * 3
    for i in range(3):
        for k in range(4):
            assert torch.equal(inputs[4 * i + k], torch.rot90(x[i], k, dims=(-2, -1)))
            assert labels[4 * i + k] == k
    # label 1 is a quarter turn counter-clockwise: the top-right pixel moves to the top-left
    img = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]).unsqueeze(0)
    assert rotate_all(img)[0][1, 0].tolist() == [[2.0, 4.0], [1.0, 3.0]]


def test_rotation_head_loss_and_metrics():
    obj = objective("rotation", GRAY)
    head = obj.build_head(6)
    out = head(torch.randn(8, 6, 3, 3))
    assert out.shape == (8, 4)
    targets = torch.arange(4).repeat(2)
    assert obj.loss(out, targets).item() == pytest.approx(F.cross_entropy(out, targets).item())
    assert obj.metrics(torch.eye(4).repeat(2, 1), targets) == {"top1": 1.0}


# -- colorization -------------------------------------------------------------------------------

def test_rgb_to_lab_matches_reference_values():
    # sRGB primaries, white, grey 50 % and black in CIE Lab (D65), as skimage.color.rgb2lab gives them
    rgb = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0], [0.5, 0.5, 0.5]], dtype=torch.float64)
    want = torch.tensor([
        [53.2408, 80.0925, 67.2032], [87.7347, -86.1827, 83.1793], [32.2970, 79.1875, -107.8602],
        [100.0, 0.0, 0.0], [0.0, 0.0, 0.0], [53.3890, 0.0, 0.0],
    ], dtype=torch.float64)
    lab = rgb_to_lab(rgb.T.reshape(3, 6, 1))[:, :, 0].T
    torch.testing.assert_close(lab, want, atol=0.01, rtol=0)


def _grid_points_next_to_srgb() -> set[tuple[int, int]]:
    """The ab grid points among the four around some 8-bit sRGB colour. The ab projection of
    the RGB cube is that of its surface, so the six faces at 8-bit steps suffice."""
    v = torch.arange(256, dtype=torch.float64) / 255.0
    u, w = torch.meshgrid(v, v, indexing="ij")
    near = set()
    for channel, value in itertools.product(range(3), (0.0, 1.0)):
        planes = [u, w]
        planes.insert(channel, torch.full_like(u, value))
        low = torch.floor(rgb_to_lab(torch.stack(planes))[1:].reshape(2, -1) / 10).long().unique(dim=1)
        near |= {(int(a + da) * 10, int(b + db) * 10) for a, b in low.T for da in (0, 1) for db in (0, 1)}
    return near


def test_shipped_ab_bins_are_zhangs_313_and_cover_srgb():
    shipped = load_bins()
    data = json.loads(BINS_FILE.read_text())
    assert data["count"] == len(shipped) == 313
    assert len(torch.unique(shipped, dim=0)) == len(shipped)
    # published facts: first and last points of pts_in_hull, and the span (docs/methods/unnas.md §1.3)
    assert shipped[:6].tolist() == [[-90, 50], [-90, 60], [-90, 70], [-90, 80], [-90, 90], [-80, 20]]
    assert shipped[307:].tolist() == [[100, -50], [100, -40], [100, -30], [100, -20], [100, -10], [100, 0]]
    assert shipped[:, 1].min() == -110 and shipped[:, 1].max() == 100
    for a in shipped[:, 0].unique():  # one contiguous b range per a
        b = shipped[shipped[:, 0] == a, 1]
        assert torch.equal(b, torch.arange(b.min(), b.max() + 1, 10, dtype=b.dtype))
    # every grid point next to an sRGB colour is a bin (309 of the 313)
    near = _grid_points_next_to_srgb()
    assert len(near) == 309 and near <= {tuple(map(int, p)) for p in shipped.tolist()}


def test_every_srgb_colour_rounds_to_a_bin_and_targets_are_the_nearest_bin():
    bins = load_bins()
    index = BinIndex(bins)
    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (3, 64, 64), generator=g).double() / 255
    ab = rgb_to_lab(rgb)[1:]
    got = index(ab)
    brute = torch.cdist(ab.reshape(2, -1).T, bins.double()).argmin(dim=1).reshape(64, 64)
    assert torch.equal(got, brute)
    rounded = (ab / 10).round() * 10  # in-gamut colours: the nearest bin is the rounded point
    assert torch.equal(bins[got].double(), rounded.movedim(0, -1))
    # off-grid / out-of-reach ab values fall back to the exact nearest bin
    far = torch.tensor([[130.0, -140.0, 3.0], [125.0, 0.0, 111.0]]).view(2, 1, 3)
    near = torch.cdist(far.reshape(2, -1).T, bins).argmin(dim=1)
    assert torch.equal(index(far).reshape(-1), near)


def test_colorization_inputs_and_per_pixel_targets():
    obj = objective("colorization")
    assert obj.input_channels(3) == 1 and obj.num_bins == 313
    mean, std = torch.tensor(RGB.mean).view(3, 1, 1), torch.tensor(RGB.std).view(3, 1, 1)
    rgb = torch.rand(2, 3, 6, 6)
    rgb[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])  # pure red: ab (80.1, 67.2) -> bin (80, 70)
    inputs, targets = obj.prepare((rgb - mean) / std, None)
    assert inputs.shape == (2, 1, 6, 6) and targets.shape == (2, 6, 6) and targets.dtype == torch.long
    lab = rgb_to_lab(rgb)
    want_l = (lab[:, :1] / 100 - sum(RGB.mean) / 3) / (sum(RGB.std) / 3)
    torch.testing.assert_close(inputs, want_l, atol=1e-4, rtol=1e-4)
    assert obj.bins[targets[0, 0, 0]].tolist() == [80.0, 70.0]
    brute = torch.cdist(lab[:, 1:].movedim(1, -1).reshape(-1, 2), obj.bins).argmin(dim=1)
    assert torch.equal(targets.reshape(-1), brute)


def test_colorization_head_upsamples_logits_to_every_pixel():
    obj = objective("colorization")
    head = obj.build_head(5)
    assert isinstance(head, torch.nn.Conv2d) and head.out_channels == 313 and head.bias is not None
    low = head(torch.randn(2, 5, 3, 3))
    targets = torch.randint(0, 313, (2, 9, 9))
    full = F.interpolate(low, size=(9, 9), mode="bilinear", align_corners=True)
    assert obj.loss(low, targets).item() == pytest.approx(F.cross_entropy(full, targets).item(), rel=1e-6)
    m = obj.metrics(low, targets)
    assert m["top1"] == pytest.approx((full.argmax(1) == targets).float().mean().item())
    assert 0 <= m["top1"] <= m["top5"] <= 1


def test_colorization_refuses_grayscale_data():
    with pytest.raises(ConfigError, match="needs RGB colour images.*1 channel"):
        objective("colorization", GRAY)


def test_colorization_bins_file_is_validated(tmp_path):
    bad = tmp_path / "bins.json"
    bad.write_text(json.dumps({"bins": [[0, 5], [10, 10]]}))
    with pytest.raises(ConfigError, match="10-unit ab grid"):
        load_bins(str(bad))
    good = tmp_path / "ok.json"
    good.write_text(json.dumps({"bins": [[0, 0], [10, 10], [-20, 30]]}))
    cfg = component(ObjectiveConfig, "colorization", bins=str(good))
    assert create_objective(cfg, RGB).build_head(4).out_channels == 3
    good.write_text(json.dumps({"bins": [[0, 0], [10, 10]]}))  # the same path, new content: read again
    assert create_objective(cfg, RGB).build_head(4).out_channels == 2
    npy = tmp_path / "bins.npy"
    np.save(npy, np.array([[0.0, 0.0], [20.0, -30.0]]))
    assert load_bins(str(npy)).tolist() == [[0.0, 0.0], [20.0, -30.0]]


# -- jigsaw -------------------------------------------------------------------------------------

def test_shipped_3x3_permutations_are_distinct_and_far_apart():
    perms = permutation_set(3)
    assert perms.shape == (1000, 9)
    assert all(sorted(p) == list(range(9)) for p in perms.tolist())
    d = pairwise_hamming(perms)
    assert d.min().item() == MIN_HAMMING_3X3 == json.loads(PERMS_FILE.read_text())["min_hamming"]
    # the set is the greedy sequence: regenerating a prefix reproduces the file
    assert torch.equal(greedy_permutations(9, 20).long(), perms[:20])
    assert permutation_set(3, 100).shape == (100, 9)


def test_2x2_grid_uses_all_24_permutations():
    perms = permutation_set(2)
    assert perms.shape == (24, 4)
    assert {tuple(p) for p in perms.tolist()} == set(itertools.permutations(range(4)))
    assert pairwise_hamming(perms).min().item() == 2
    with pytest.raises(ConfigError, match="not supported"):
        permutation_set(4)


def test_tiles_reassemble_the_image_under_the_inverse_permutation():
    g = torch.Generator().manual_seed(1)
    images = torch.randn(5, 3, 12, 12, generator=g)
    perms = permutation_set(3)[torch.randint(1000, (5,), generator=g)]
    # whole cells (no gap): undoing the shuffle and laying the tiles out again gives the image
    tiles = cut_tiles(images, 3, 4, torch.zeros(5, 9, 2, dtype=torch.long))
    shuffled = shuffle_tiles(tiles, perms)
    restored = torch.gather(shuffled, 1, perms.view(5, 9, 1, 1, 1).expand_as(shuffled))  # slot perm[k] -> k
    grid = restored.view(5, 3, 3, 3, 4, 4).permute(0, 3, 1, 4, 2, 5).reshape(5, 3, 12, 12)
    assert torch.equal(grid, images)
    # random offsets: slot perm[b, k] holds the window of cell k at its offset
    offsets = torch.randint(0, 2, (5, 9, 2), generator=g)
    shuffled = shuffle_tiles(cut_tiles(images, 3, 3, offsets), perms)
    for b in range(5):
        for k in range(9):
            y, x = (k // 3) * 4 + offsets[b, k, 0], (k % 3) * 4 + offsets[b, k, 1]
            assert torch.equal(shuffled[b, perms[b, k]], images[b, :, y:y + 3, x:x + 3])


def test_tiles_are_standardised_one_by_one():
    tiles = standardise_tiles(torch.rand(4, 9, 3, 5, 5) * 7 + 2)
    flat = tiles.flatten(2)
    torch.testing.assert_close(flat.mean(-1), torch.zeros(4, 9), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.std(-1, unbiased=False), torch.ones(4, 9), atol=1e-4, rtol=0)
    assert standardise_tiles(torch.ones(1, 1, 1, 2, 2)).abs().max() == 0  # a flat tile stays finite


def test_jigsaw_prepare_geometry_labels_and_determinism():
    obj = objective("jigsaw", RGB, grid=2)  # 16 px: 8 px cells, floor(0.76 * 8) = 6 px tiles
    assert (obj.cell, obj.tile, obj.num_classes, obj.input_size(16)) == (8, 6, 24, 6)
    x = torch.randn(7, 3, 16, 16)
    inputs, targets = obj.prepare(x, torch.zeros(7, dtype=torch.long))
    assert inputs.shape == (28, 3, 6, 6) and targets.shape == (7,) and targets.max() < 24
    again = obj.prepare(x.clone(), torch.zeros(7, dtype=torch.long))
    assert torch.equal(inputs, again[0]) and torch.equal(targets, again[1])  # a pure function of the batch
    other, _ = obj.prepare(x + 1e-3, torch.zeros(7, dtype=torch.long))
    assert not torch.equal(inputs, other)
    assert objective("jigsaw", RGB, grid=3).tile == math.floor(0.76 * 5)
    with pytest.raises(ConfigError, match="do not fit"):
        objective("jigsaw", RGB, grid=2, tile_size=9)


def test_jigsaw_grays_about_30_percent_of_colour_puzzles_and_none_of_grayscale_ones():
    obj = objective("jigsaw", PLAIN_RGB, grid=2)
    x = torch.rand(2000, 3, 16, 16)
    inputs, _ = obj.prepare(x, None)
    tiles = inputs.view(2000, 4, 3, 6, 6)
    gray = (tiles[:, :, 0] == tiles[:, :, 1]).all(dim=(1, 2, 3)) & (tiles[:, :, 1] == tiles[:, :, 2]).all(dim=(1, 2, 3))
    assert abs(gray.float().mean().item() - 0.3) < 0.04
    assert objective("jigsaw", DatasetInfo("g", 1, 28, 10, (0.5,), (0.25,)), grid=2, tile_size=12).gray_prob == 0


def test_jigsaw_head_concatenates_each_puzzles_tiles_in_slot_order():
    head = JigsawHead(channels=2, tiles=4, num_classes=24)
    feats = torch.randn(3 * 4, 2, 3, 3)
    pooled = feats.mean(dim=(2, 3)).view(3, 4 * 2)  # puzzle b: slots 0..3, each C features
    torch.testing.assert_close(head(feats), head.fc(pooled))
    obj = objective("jigsaw", GRAY, grid=2, tile_size=12)
    inputs, targets = obj.prepare(torch.randn(5, 1, 28, 28), None)
    assert obj.build_head(2)(torch.randn(inputs.shape[0], 2, 3, 3)).shape == (5, 24)


def test_every_objective_is_registered():
    assert {"supervised", "rotation", "colorization", "jigsaw"} <= set(list_objectives())
    assert component(ObjectiveConfig, "jigsaw").grid == 3
