"""Cityscapes semantic segmentation (fine annotations) in torchvision's layout.

<root>/leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png
<root>/gtFine/{train,val}/<city>/<name>_gtFine_labelIds.png

torchvision reads the files; label ids are mapped to the 19 train ids of the benchmark (every
other id, e.g. unlabeled or license plate, becomes 255 and is ignored). Items are (normalised
float image, uint8 label map); see data/segmentation.py for the pipelines.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import datasets as tvd
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from archsearch.data.base import DATASETS, DatasetInfo, DataSource, Transform, env_root, given_root, one_line
from archsearch.data.folders import IMAGENET_MEAN, IMAGENET_STD
from archsearch.data.segmentation import IGNORE_INDEX, segmentation_transform
from archsearch.errors import ConfigError, DataError

# The training list is put in a fixed pseudo-random order (not the file system's), so that
# data.subset and the search's train_portion split draw from every city.
ORDER_SEED = 20200327


def train_id_table() -> torch.Tensor:
    """uint8 lookup table label id -> train id (255 for ids the benchmark does not evaluate)."""
    table = torch.full((256,), IGNORE_INDEX, dtype=torch.uint8)
    for c in tvd.Cityscapes.classes:
        if 0 <= c.id < 256 and 0 <= c.train_id < IGNORE_INDEX:
            table[c.id] = c.train_id
    return table


def class_names() -> list[str]:
    return [c.name for c in sorted(tvd.Cityscapes.classes, key=lambda c: c.train_id)
            if 0 <= c.train_id < IGNORE_INDEX]


class ToTrainIds:
    """(PIL image, PIL labelIds map) -> (uint8 Image, uint8 Mask of train ids), then the pipeline."""

    def __init__(self, pipeline: Transform):
        self.table = train_id_table()
        self.pipeline = pipeline

    def __call__(self, image: Any, target: Any) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.from_numpy(np.array(target, dtype=np.uint8))
        if ids.ndim != 2:
            raise DataError(f"cityscapes: a label map must be one 8-bit channel, got shape {tuple(ids.shape)}")
        return self.pipeline(TF.to_image(image), tv_tensors.Mask(self.table[ids.long()]))


@DATASETS.register("cityscapes")
class CityscapesSource(DataSource):
    """image_size is the training crop (769 for evaluation, 321 in the UnNAS search)."""

    def native_info(self) -> DatasetInfo:
        return DatasetInfo("cityscapes", 3, 769, len(class_names()), IMAGENET_MEAN, IMAGENET_STD)

    def _candidates(self) -> list[Path]:
        root = given_root(self.cfg)
        if root is not None:  # the path given is the path used
            return [root]
        places = []
        env = env_root()
        if env is not None:
            places += [env / "cityscapes", env]
        return places

    def root(self) -> Path:
        for place in self._candidates():
            if (place / "leftImg8bit").is_dir() and (place / "gtFine").is_dir():
                return place
        places = ", ".join(str(p) for p in self._candidates()) or "no data.root nor $ARCHSEARCH_DATA"
        raise DataError(f"cityscapes not found (looked in {places}); point data.root at the folder holding "
                        "leftImg8bit/ and gtFine/ (torchvision's Cityscapes layout)")

    def transform(self, augment: bool) -> Transform:
        seg = self.cfg.segmentation
        if min(seg.base_size, seg.scale_min) <= 0 or seg.scale_max < seg.scale_min or seg.pad_stride < 1:
            raise ConfigError(f"data.segmentation needs base_size > 0, 0 < scale_min <= scale_max and "
                              f"pad_stride >= 1, got {seg}")
        return ToTrainIds(segmentation_transform(self.info(), self.cfg, augment))

    def load(self, train: bool, transform: Optional[Transform]) -> Dataset:
        root = self.root()
        split = "train" if train else "val"
        try:
            ds = tvd.Cityscapes(str(root), split=split, mode="fine", target_type="semantic", transforms=transform)
        except (OSError, RuntimeError, ValueError) as e:
            raise DataError(f"cityscapes: cannot read the {split} split in {root}: {one_line(e)}") from None
        pairs = sorted(zip(ds.images, ds.targets, strict=True))
        if not pairs:
            raise DataError(f"cityscapes: no images in {root / 'leftImg8bit' / split}")
        if train:
            order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(ORDER_SEED)).tolist()
            pairs = [pairs[i] for i in order]
        missing = [t[0] for _, t in pairs if not Path(t[0]).is_file()]
        if missing:
            raise DataError(f"cityscapes: {len(missing)} label maps missing, e.g. {missing[0]}")
        ds.images = [p for p, _ in pairs]
        ds.targets = [t for _, t in pairs]
        return ds
