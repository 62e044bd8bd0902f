"""Training and evaluation transforms built from torchvision's v2 transforms.

Every random choice here draws from torch's global RNG, which BatchStream seeds per sample,
so augmentation is reproducible in any worker process.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.transforms import v2

from archsearch.config import DataConfig
from archsearch.data.base import DatasetInfo, Transform


class Cutout(nn.Module):
    """Zero a `size` x `size` square centred on a uniformly drawn pixel (DeVries & Taylor, 2017).

    The square is clipped at the border, so a centre near the edge removes less, as in the
    original recipe used by DARTS-family evaluations.
    """

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, img: Tensor) -> Tensor:
        h, w = img.shape[-2:]
        cy = int(torch.randint(h, ()).item())
        cx = int(torch.randint(w, ()).item())
        half = self.size // 2
        y0, y1 = max(cy - half, 0), min(cy - half + self.size, h)
        x0, x1 = max(cx - half, 0), min(cx - half + self.size, w)
        img = img.clone()
        img[..., y0:y1, x0:x1] = 0
        return img

    def extra_repr(self) -> str:
        return f"size={self.size}"


def _to_normalised(info: DatasetInfo) -> list[Transform]:
    return [
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(info.mean, info.std),
        v2.ToPureTensor(),
    ]


def build_transform(
    style: str, info: DatasetInfo, native_size: int, cfg: DataConfig, augment: bool
) -> Transform:
    """The pipeline for one split; `augment` false gives the deterministic evaluation view."""
    size = info.image_size
    ops: list[Transform] = []
    if style == "large":
        if augment:
            ops += [
                v2.RandomResizedCrop(size, antialias=True),
                v2.RandomHorizontalFlip(),
                v2.ColorJitter(0.4, 0.4, 0.4, 0.2),
            ]
        else:
            ops += [v2.Resize(size * 256 // 224, antialias=True), v2.CenterCrop(size)]
        ops += [v2.ToImage(), *_to_normalised(info)]
    elif style == "small":
        # Convert first: the geometric ops then run on small uint8 tensors.
        ops.append(v2.ToImage())
        if size != native_size:
            ops += [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
        if augment:
            ops += [v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip()]
        ops += _to_normalised(info)
    else:
        raise ValueError(f"unknown augmentation style {style!r}")
    if augment and cfg.cutout > 0:
        ops.append(Cutout(cfg.cutout))
    return v2.Compose(ops)
