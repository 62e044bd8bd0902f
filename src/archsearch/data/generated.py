"""A synthetic dataset that needs no files, so tests and smoke runs work anywhere."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from archsearch.config import GeneratedDataConfig
from archsearch.data.base import DATASETS, DatasetInfo, DataSource, Transform
from archsearch.errors import DataError

# Fixed seeds: the class patterns are shared by both splits, the samples are not.
PATTERN_SEED = 20240
SPLIT_SEEDS = {True: 1, False: 2}
SIGNAL, NOISE = 0.15, 0.15


def generate(g: GeneratedDataConfig, train: bool) -> tuple[Tensor, Tensor]:
    """uint8 images (N, C, H, W) and int64 labels: a smooth per-class pattern plus noise.

    The patterns are low-frequency, so a small network can learn them even through
    pad-crop and flip augmentation, yet they are not separable by a single pixel.
    """
    patterns = torch.randn(
        g.num_classes, g.channels, 4, 4, generator=torch.Generator().manual_seed(PATTERN_SEED)
    )
    size = (g.image_size, g.image_size)
    patterns = F.interpolate(patterns, size=size, mode="bilinear", align_corners=False)
    patterns = patterns / patterns.flatten(1).std(dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)

    gen = torch.Generator().manual_seed(SPLIT_SEEDS[train])
    labels = torch.randperm(g.num_samples, generator=gen) % g.num_classes  # balanced classes
    noise = torch.randn(g.num_samples, g.channels, *size, generator=gen)
    pixels = 0.5 + SIGNAL * patterns[labels] + NOISE * noise
    images = (pixels.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels


class GeneratedImages(Dataset):
    """Holds the generated uint8 images; items are (transform(image), label)."""

    def __init__(self, images: Tensor, labels: Tensor, transform: Optional[Transform] = None):
        self.images = images
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]


@DATASETS.register("generated")
class GeneratedSource(DataSource):
    """Shape from cfg.generated; num_samples images in each of the train and test splits."""

    def _shape(self) -> GeneratedDataConfig:
        g = self.cfg.generated
        if min(g.channels, g.image_size, g.num_classes, g.num_samples) < 1:
            raise DataError(f"data.generated values must all be positive, got {g}")
        return g

    def native_info(self) -> DatasetInfo:
        g = self._shape()
        # Nominal statistics of the generator (mean 0.5, std ~ sqrt(SIGNAL^2 + NOISE^2)).
        mean, std = (0.5,) * g.channels, ((SIGNAL**2 + NOISE**2) ** 0.5,) * g.channels
        return DatasetInfo("generated", g.channels, g.image_size, g.num_classes, mean, std)

    def load(self, train: bool, transform: Optional[Transform]) -> Dataset:
        images, labels = generate(self._shape(), train)
        return GeneratedImages(images, labels, transform)
