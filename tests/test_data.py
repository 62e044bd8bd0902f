"""Tests for archsearch.data: datasets, search splits and resumable batch streams."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from archsearch.config import DataConfig, GeneratedDataConfig
from archsearch.data import (
    BatchStream,
    Cutout,
    build_dataset,
    build_search_data,
    dataset_info,
    list_datasets,
    vision,
)
from archsearch.errors import DataError

SYSTEM_FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test may depend on the caller's data folder or write to the real cache."""
    monkeypatch.delenv("ARCHSEARCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def generated_cfg(**kw) -> DataConfig:
    gen = GeneratedDataConfig(channels=3, image_size=16, num_classes=5, num_samples=64)
    return DataConfig(name="generated", generated=gen, **kw)


def assert_batches_equal(a, b) -> None:
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# --- registry and generated data -------------------------------------------------------------


def test_registry_names():
    expected = {"fashion-mnist", "cifar10", "cifar100", "imagenet", "imagefolder", "generated", "cityscapes"}
    assert expected <= set(list_datasets())


def test_generated_shapes_labels_and_determinism():
    cfg = generated_cfg(cutout=4)
    info = dataset_info(cfg)
    assert (info.in_channels, info.image_size, info.num_classes) == (3, 16, 5)
    assert len(info.mean) == len(info.std) == 3
    a = build_dataset(cfg, train=True, augment=False)
    b = build_dataset(cfg, train=True, augment=False)
    assert len(a) == 64
    x, y = a[3]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert isinstance(y, int) and 0 <= y < 5
    assert all(torch.equal(a[i][0], b[i][0]) and a[i][1] == b[i][1] for i in range(len(a)))
    labels = [a[i][1] for i in range(len(a))]
    assert set(labels) == set(range(5))
    test = build_dataset(cfg, train=False, augment=False)
    assert not torch.equal(test[0][0], a[0][0])


def test_generated_image_size_override_resizes():
    cfg = generated_cfg(image_size=24)
    assert dataset_info(cfg).image_size == 24
    assert build_dataset(cfg, train=True, augment=True)[0][0].shape == (3, 24, 24)


def test_cutout_zeroes_a_clipped_square():
    torch.manual_seed(0)
    out = Cutout(4)(torch.ones(2, 10, 10))
    zeros = (out == 0).all(dim=0).sum().item()
    assert 4 <= zeros <= 16 and (out == 1).any()


# --- batch streams ---------------------------------------------------------------------------


def make_stream(num_workers: int = 0, seed: int = 7) -> BatchStream:
    dataset = build_dataset(generated_cfg(cutout=4), train=True, augment=True)
    return BatchStream(dataset, range(40), batch_size=8, seed=seed, num_workers=num_workers)


def test_augmentation_follows_the_sample_seed():
    stream = make_stream()
    same = [stream.dataset[(3, 11)][0] for _ in range(2)]
    other = stream.dataset[(3, 12)][0]
    assert torch.equal(same[0], same[1]) and not torch.equal(same[0], other)


def test_stream_is_deterministic_and_seed_dependent():
    a, b, c = make_stream(), make_stream(), make_stream(seed=8)
    assert a.batches_per_epoch == 5
    for _ in range(7):
        x, y = a.next()
        assert x.shape == (8, 3, 16, 16) and y.dtype == torch.int64
        assert_batches_equal((x, y), b.next())
    assert a.position == 7
    assert not torch.equal(make_stream().next()[0], c.next()[0])


def test_stream_epochs_cover_the_subset_with_new_orders():
    s = make_stream()
    dataset = s.dataset.dataset
    epochs = []
    for _ in range(2):
        labels = torch.cat([s.next()[1] for _ in range(s.batches_per_epoch)])
        epochs.append(labels)
        assert sorted(labels.tolist()) == sorted(dataset.labels[:40])
    assert not torch.equal(epochs[0], epochs[1])


@pytest.mark.parametrize("k", [0, 3, 5, 12])  # 5 and 12 start on or cross epoch boundaries
def test_seek_resumes_bit_identically(k):
    fresh = make_stream()
    expected = [fresh.next() for _ in range(k + 2)]
    resumed = make_stream()
    resumed.seek(k)
    assert resumed.position == k
    assert_batches_equal(resumed.next(), expected[k])
    assert_batches_equal(resumed.next(), expected[k + 1])
    assert resumed.position == k + 2


def test_seek_backwards_mid_epoch():
    s = make_stream()
    first = [s.next() for _ in range(3)]
    s.seek(1)
    assert_batches_equal(s.next(), first[1])


def test_stream_leaves_global_rng_untouched():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    s = make_stream()
    for _ in range(6):
        s.next()
    assert torch.equal(torch.get_rng_state(), state)


def test_stream_independent_of_num_workers():
    serial = make_stream(num_workers=0)
    serial.seek(4)
    parallel = make_stream(num_workers=2)
    parallel.seek(4)
    for _ in range(2):  # crosses into the next epoch
        assert_batches_equal(serial.next(), parallel.next())


def test_stream_without_drop_last_keeps_the_tail():
    dataset = build_dataset(generated_cfg(), train=True, augment=False)
    s = BatchStream(dataset, range(20), batch_size=8, seed=0, drop_last=False)
    assert s.batches_per_epoch == 3
    assert [len(s.next()[1]) for _ in range(4)] == [8, 8, 4, 8]


def test_stream_too_small_for_one_batch():
    dataset = build_dataset(generated_cfg(), train=True, augment=False)
    with pytest.raises(DataError):
        BatchStream(dataset, range(5), batch_size=8, seed=0)


# --- search splits ---------------------------------------------------------------------------


def test_portion_split_sizes_and_disjointness():
    cfg = generated_cfg(batch_size=8, val_batch_size=4, train_portion=0.75, subset=48)
    data = build_search_data(cfg, seed=1)
    assert data.info.num_classes == 5
    train, val = data.train.indices.tolist(), data.val.indices.tolist()
    assert train == list(range(36)) and val == list(range(36, 48))
    assert not set(train) & set(val)
    assert data.train.next()[0].shape == (8, 3, 16, 16)
    assert data.val.next()[0].shape == (4, 3, 16, 16)
    assert data.train.seed != data.val.seed


def test_portion_split_rejects_bad_portion():
    with pytest.raises(DataError):
        build_search_data(generated_cfg(train_portion=1.0), seed=0)


def write_image_tree(root: Path, classes: int, per_class: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    for split, count in per_class.items():
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


def test_folders_split_on_image_tree(tmp_path):
    write_image_tree(tmp_path / "tree", classes=3, per_class={"train": 4, "val": 2})
    cfg = DataConfig(
        name="imagefolder", root=str(tmp_path / "tree"), split="folders", image_size=8, batch_size=4
    )
    info = dataset_info(cfg)
    assert (info.in_channels, info.image_size, info.num_classes) == (3, 8, 3)
    data = build_search_data(cfg, seed=0)
    assert len(data.train.indices) == 12 and len(data.val.indices) == 6
    x, y = data.val.next()
    assert x.shape == (4, 3, 8, 8) and int(y.max()) < 3
    evaluation = build_dataset(cfg, train=False, augment=True)
    assert len(evaluation) == 6 and evaluation[0][0].shape == (3, 8, 8)


def test_folders_split_refused_for_flat_datasets():
    with pytest.raises(DataError):
        build_search_data(generated_cfg(split="folders"), seed=0)


# --- datasets on disk ------------------------------------------------------------------------


@pytest.mark.skipif(not SYSTEM_FMNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_from_system_package():
    cfg = DataConfig(name="fashion-mnist")
    train = build_dataset(cfg, train=True, augment=True)
    test = build_dataset(cfg, train=False, augment=False)
    assert (len(train), len(test)) == (60000, 10000)
    x, y = train[0]
    assert x.shape == (1, 28, 28) and 0 <= y < 10
    assert 0 <= test[9999][1] < 10
    assert dataset_info(cfg).mean == (0.2860,)


def test_fashion_mnist_missing_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setattr(vision, "SYSTEM_FASHION_MNIST_DIRS", [tmp_path / "system"])
    monkeypatch.setenv("ARCHSEARCH_DATA", str(tmp_path / "env"))
    cfg = DataConfig(name="fashion-mnist")
    with pytest.raises(DataError) as err:
        build_dataset(cfg, train=True, augment=False)
    message = str(err.value)
    assert "\n" not in message
    for place in ("env", "env/fashion-mnist", "system"):
        assert str(tmp_path / place) in message
    assert "apt-get install dataset-fashion-mnist" in message and "data.download=true" in message


def test_a_given_data_root_is_the_only_place_looked_in(tmp_path, monkeypatch):
    """No silent fallback to another copy: a missing data.root is an error naming it."""
    monkeypatch.setattr(vision, "SYSTEM_FASHION_MNIST_DIRS", [tmp_path / "system"])
    monkeypatch.setenv("ARCHSEARCH_DATA", str(tmp_path / "env"))
    cfg = DataConfig(name="fashion-mnist", root=str(tmp_path / "root"))
    with pytest.raises(DataError, match="data.root .*root does not exist"):
        build_dataset(cfg, train=True, augment=False)
    (tmp_path / "root").mkdir()
    with pytest.raises(DataError) as err:
        build_dataset(cfg, train=True, augment=False)
    assert str(tmp_path / "root") in str(err.value) and str(tmp_path / "system") not in str(err.value)


def write_fake_cifar10(root: Path, per_batch: int = 6) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {
            "data": rng.integers(0, 256, (per_batch, 3 * 32 * 32), dtype=np.uint8),
            "labels": rng.integers(0, 10, per_batch).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(entry))
    meta = {"label_names": [f"class{i}" for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))


def test_cifar10_in_torchvision_layout(tmp_path, monkeypatch):
    import torchvision

    # The files are fake, so torchvision's md5 checks (data and metadata) must be bypassed.
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    write_fake_cifar10(tmp_path)
    cfg = DataConfig(name="cifar10", root=str(tmp_path), cutout=8)
    train = build_dataset(cfg, train=True, augment=True)
    test = build_dataset(cfg, train=False, augment=False)
    assert (len(train), len(test)) == (30, 6)
    x, y = train[0]
    assert x.shape == (3, 32, 32) and 0 <= y < 10
    data = build_search_data(DataConfig(name="cifar10", root=str(tmp_path), batch_size=5), seed=0)
    assert data.train.next()[0].shape == (5, 3, 32, 32)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "imagenet", "imagefolder"])
def test_missing_dataset_is_one_line_data_error(tmp_path, name):
    cfg = DataConfig(name=name, root=str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as err:
        build_dataset(cfg, train=True, augment=False)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "nowhere") in message
