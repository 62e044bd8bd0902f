"""The two halves a bilevel search needs: one stream trains the weights, one the architecture."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch.utils.data import Dataset

from archsearch.config import DataConfig
from archsearch.data.base import DATASETS, DatasetInfo, DataSource
from archsearch.data.folders import ImageFolderSource
from archsearch.data.stream import BatchStream
from archsearch.errors import DataError


@dataclass
class SearchData:
    info: DatasetInfo
    train: BatchStream  # updates the weights
    val: BatchStream  # updates the architecture


def _source(cfg: DataConfig) -> DataSource:
    return DATASETS.create(cfg.name, cfg)


def list_datasets() -> list[str]:
    return DATASETS.names()


def dataset_info(cfg: DataConfig) -> DatasetInfo:
    """Channels, size, classes and normalisation, without loading the images."""
    return _source(cfg).info()


def static_dataset_info(cfg: DataConfig) -> Optional[DatasetInfo]:
    """dataset_info from the registry alone, touching no file; None where only the files tell."""
    return _source(cfg).static_info()


def _size(dataset: Dataset) -> int:
    return len(dataset)  # type: ignore[arg-type]  # map-style datasets all define __len__


def _load(source: DataSource, train: bool, augment: bool) -> Dataset:
    return source.load(train, source.transform(augment))


def build_dataset(cfg: DataConfig, train: bool, augment: bool) -> Dataset:
    """The training or evaluation split; items are (normalised float CxHxW image, int label),
    or (image, HxW label map) for segmentation datasets.

    Augmentation only ever applies to the training split.
    """
    return _load(_source(cfg), train, augment and train)


def build_search_data(cfg: DataConfig, seed: int, *, pin_memory: bool = False, rank: int = 0,
                      world: int = 1) -> SearchData:
    """Split the data for search.

    split=portion (DARTS): the first floor(train_portion * n) training images feed the weights,
    the rest the architecture; both halves see the training transform. With shuffle_split the
    images are put in a seeded random order first (subset then takes the first n of that order).
    split=folders (PC-DARTS ImageNet): <root>/train feeds the weights, <root>/val the
    architecture, again both with the training transform. data.subset applies to portion only.
    """
    source = _source(cfg)
    info = source.info()
    val_batch = cfg.val_batch_size or cfg.batch_size

    def stream(dataset: Dataset, indices: range, batch_size: int, stream_seed: int) -> BatchStream:
        return BatchStream(
            dataset,
            indices,
            batch_size,
            stream_seed,
            num_workers=cfg.num_workers,
            drop_last=True,
            pin_memory=pin_memory,
            rank=rank,
            world=world,
        )

    if cfg.split == "portion":
        if not 0.0 < cfg.train_portion < 1.0:
            raise DataError(
                f"data.train_portion must lie strictly between 0 and 1, got {cfg.train_portion}"
            )
        dataset = _load(source, True, cfg.augment)
        n = _size(dataset)
        if cfg.subset > 0:
            n = min(n, cfg.subset)
        order = range(n)
        if cfg.shuffle_split:  # UnNAS: the list is shuffled with the run seed, then split
            gen = torch.Generator().manual_seed(seed)
            order = torch.randperm(_size(dataset), generator=gen)[:n].tolist()
        cut = math.floor(cfg.train_portion * n)
        train = stream(dataset, order[:cut], cfg.batch_size, seed)
        val = stream(dataset, order[cut:], val_batch, seed + 1)
    elif cfg.split == "folders":
        if not isinstance(source, ImageFolderSource):
            raise DataError(
                f"data.split=folders needs a dataset stored as <root>/train and <root>/val "
                f"(imagenet, imagefolder), not {cfg.name}; use data.split=portion"
            )
        # val/ is read with the training transform: during search it is training data too.
        train_set = _load(source, True, cfg.augment)
        val_set = _load(source, False, cfg.augment)
        train = stream(train_set, range(_size(train_set)), cfg.batch_size, seed)
        val = stream(val_set, range(_size(val_set)), val_batch, seed + 1)
    else:
        raise DataError(f"unknown data.split {cfg.split!r}; choose portion or folders")
    return SearchData(info=info, train=train, val=val)
