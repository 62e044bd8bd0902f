"""Joint image + label-map pipelines for semantic segmentation (UnNAS, docs/methods/unnas.md §1.1, §1.5).

Items are (image, mask) pairs; geometric steps act on both through torchvision's v2 functional
ops, which resize a `tv_tensors.Mask` with nearest neighbour on its uint8 values (docs/methods/unnas.md §7.4) and
leave it alone in the photometric steps. Every random draw uses torch's global RNG, which the
batch samplers seed per sample, so a resumed run sees the same crops.

Train: short side to max(crop, int(base * s)) with log2 s ~ U(log2 scale_min, log2 scale_max),
random crop x crop, horizontal flip, /255, PCA lighting, normalisation. Evaluation: the full
image, normalised, zero-padded at the bottom/right to k * pad_stride + 1 pixels per side (labels
padded with 255), which is how the reference feeds 1024x2048 Cityscapes images as 1025x2049.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from archsearch.config import DataConfig
from archsearch.data.base import DatasetInfo, Transform

IGNORE_INDEX = 255
# AlexNet PCA lighting on ImageNet RGB statistics: eigenvalues and eigenvectors (columns).
LIGHTING_EIGVAL = (0.2175, 0.0188, 0.0045)
LIGHTING_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


class RandomShortSideScale:
    """Resize so the short side is max(min_size, int(base * s)), s log-uniform in [lo, hi]."""

    def __init__(self, base: int, lo: float, hi: float, min_size: int):
        self.base, self.min_size = base, min_size
        self.log_lo, self.log_hi = math.log2(lo), math.log2(hi)

    def __call__(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        u = torch.rand(()).item()
        short = max(self.min_size, int(self.base * 2 ** (self.log_lo + u * (self.log_hi - self.log_lo))))
        # bilinear without antialiasing, as OpenCV's INTER_LINEAR in the reference
        return TF.resize(image, short, antialias=False), TF.resize(mask, short)


class Lighting:
    """AlexNet-style PCA colour noise on a [0, 1] float image: add eigvec @ (alpha * eigval)."""

    def __init__(self, std: float):
        self.std = std
        self.eigval = torch.tensor(LIGHTING_EIGVAL)
        self.eigvec = torch.tensor(LIGHTING_EIGVEC)

    def __call__(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        alpha = torch.randn(3) * self.std
        rgb = self.eigvec @ (alpha * self.eigval)
        return tv_tensors.wrap(image + rgb.view(3, 1, 1), like=image), mask


class PadToStride:
    """Zero-pad (labels: 255) at the bottom/right so each side is k * stride + 1."""

    def __init__(self, stride: int):
        self.stride = stride

    def target(self, n: int) -> int:
        return math.ceil((n - 1) / self.stride) * self.stride + 1

    def __call__(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        h, w = image.shape[-2:]
        pad = [0, 0, self.target(w) - w, self.target(h) - h]  # left, top, right, bottom
        if not any(pad):
            return image, mask
        return TF.pad(image, pad, fill=0), TF.pad(mask, pad, fill=IGNORE_INDEX)


def segmentation_transform(info: DatasetInfo, cfg: DataConfig, augment: bool) -> Transform:
    """Called as t(image, mask) on a uint8 tv_tensors.Image and Mask; returns float image, uint8 mask."""
    seg = cfg.segmentation
    crop = info.image_size
    steps: list = []
    if augment:
        steps += [
            RandomShortSideScale(seg.base_size, seg.scale_min, seg.scale_max, crop),
            v2.RandomCrop(crop, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}),
            v2.RandomHorizontalFlip(),
        ]
    steps.append(v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True))
    if augment and seg.lighting > 0:
        steps.append(Lighting(seg.lighting))
    steps.append(v2.Normalize(info.mean, info.std))
    if not augment and seg.pad_stride > 1:
        steps.append(PadToStride(seg.pad_stride))
    steps.append(v2.ToPureTensor())
    return v2.Compose(steps)
