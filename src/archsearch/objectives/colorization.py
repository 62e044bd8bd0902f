"""Colorization as classification (Zhang et al. 2016, as used by UnNAS; docs/methods/unnas.md §1.3).

The network sees only the lightness L of CIE Lab (one channel, L/100 standardised with the
scalar mean and std of the dataset's per-channel statistics) and predicts, for every pixel,
which of the in-gamut ab bins on a 10-unit grid holds its colour: a 1x1 conv head gives
low-resolution logits that the loss upsamples bilinearly (align_corners=True) to the input
size. Targets are the hard nearest bins; no soft encoding, no class rebalancing.

The bins: the Q = 313 in-gamut ab grid points of Zhang et al. (their `pts_in_hull`), shipped in
data/ab_bins.json; `objective.bins` loads another (Q, 2) set (.npy or .json), whose content is
part of the identity of every run that uses it (a file changed under a run is refused on resume).
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.config import ObjectiveConfig, opt
from archsearch.errors import ConfigError
from archsearch.objectives.base import OBJECTIVES, Objective

AB_GRID = 10.0
BINS_FILE = Path(__file__).parent / "data" / "ab_bins.json"

# sRGB (D65) -> XYZ and the D65 reference white of the 2-degree observer (as skimage.color).
RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
WHITE_D65 = (0.95047, 1.0, 1.08883)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], channels at dim -3 -> CIE Lab (L in [0, 100]) at dim -3."""
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).clamp_min(0) ** 2.4, rgb / 12.92)
    m = torch.tensor(RGB_TO_XYZ, dtype=rgb.dtype, device=rgb.device)
    white = torch.tensor(WHITE_D65, dtype=rgb.dtype, device=rgb.device)
    xyz = torch.einsum("ij,...jhw->...ihw", m, linear) / white.view(3, 1, 1)
    delta = 6.0 / 29.0
    f = torch.where(xyz > delta**3, xyz.clamp_min(delta**3) ** (1.0 / 3.0), xyz / (3 * delta**2) + 4.0 / 29.0)
    fx, fy, fz = f.unbind(dim=-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def load_bins(path: str = "") -> torch.Tensor:
    """The ab bin centres, (Q, 2) float32; the shipped set unless `path` names another. The file is
    read on every call (a run hashes what it reads), its parse is cached by content."""
    source = Path(path).expanduser() if path else BINS_FILE
    try:
        data = source.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read colorization bins {source}: {type(e).__name__}: {e}") from None
    return _parse_bins(data, source.suffix == ".npy", str(source))


@lru_cache(maxsize=4)
def _parse_bins(data: bytes, npy: bool, source: str) -> torch.Tensor:
    try:
        if npy:
            import numpy as np

            bins = torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False)).float()
        else:
            bins = torch.tensor(json.loads(data)["bins"], dtype=torch.float32)
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"cannot read colorization bins {source}: {type(e).__name__}: {e}") from None
    if bins.ndim != 2 or bins.shape[1] != 2 or len(bins) < 2:
        raise ConfigError(f"colorization bins {source} must be a (Q, 2) array of ab centres")
    if not torch.equal(bins, (bins / AB_GRID).round() * AB_GRID):
        raise ConfigError(f"colorization bins {source} must lie on the 10-unit ab grid")
    if len(torch.unique(bins, dim=0)) != len(bins):
        raise ConfigError(f"colorization bins {source} repeat a centre")
    return bins


class BinIndex:
    """Nearest ab bin of every pixel.

    On the grid, the nearest grid point of a colour is its rounding, so a lookup table over the
    grid answers almost every pixel; pixels whose rounded point is not a bin (colours just
    outside the bins' reach) fall back to an exact search.
    """

    def __init__(self, bins: torch.Tensor):
        self.bins = bins
        cells = (bins / AB_GRID).round().long()
        self.origin = cells.min(dim=0).values
        shape = (cells.max(dim=0).values - self.origin + 1).tolist()
        self.table = torch.full(shape, -1, dtype=torch.long)
        self.table[tuple((cells - self.origin).T)] = torch.arange(len(bins))

    def __call__(self, ab: torch.Tensor) -> torch.Tensor:
        """(..., 2, H, W) ab values -> (..., H, W) int64 bin indices."""
        device = ab.device
        table, origin = self.table.to(device), self.origin.to(device)
        flat = ab.movedim(-3, -1).reshape(-1, 2)
        cell = (flat / AB_GRID).round().long() - origin
        size = torch.tensor(table.shape, device=device)
        inside = ((cell >= 0) & (cell < size)).all(dim=1)
        index = torch.full((flat.shape[0],), -1, dtype=torch.long, device=device)
        index[inside] = table[cell[inside, 0], cell[inside, 1]]
        missing = index < 0
        if missing.any():
            d = torch.cdist(flat[missing].float(), self.bins.to(device))
            index[missing] = d.argmin(dim=1)
        return index.reshape(*ab.shape[:-3], *ab.shape[-2:])


def per_pixel_logits(outputs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(outputs.shape[-2:]) == tuple(size):
        return outputs
    return F.interpolate(outputs, size=size, mode="bilinear", align_corners=True)


@dataclass
class ColorizationConfig(ObjectiveConfig):
    """UnNAS colorization (docs/methods/unnas.md §1.3)."""

    name: str = "colorization"
    bins: str = opt("", "'' = the shipped 313 in-gamut ab bins; else a .npy/.json (Q, 2) file on the 10-grid")

    def input_files(self) -> dict[str, str]:
        return {"bins": self.bins} if self.bins else {}


@OBJECTIVES.register("colorization", config=ColorizationConfig)
class Colorization(Objective):
    name = "colorization"

    def __init__(self, cfg, info):
        if info.in_channels != 3:
            raise ConfigError(
                f"objective colorization needs RGB colour images, but dataset {info.name} has "
                f"{info.in_channels} channel(s); use objective.name=rotation or jigsaw"
            )
        self.label_smoothing = cfg.label_smoothing
        self.mean = torch.tensor(info.mean).view(3, 1, 1)
        self.std = torch.tensor(info.std).view(3, 1, 1)
        # L/100 standardised with the averages of the per-channel statistics (docs/methods/unnas.md §1.3)
        self.l_mean = sum(info.mean) / 3
        self.l_std = sum(info.std) / 3
        self.bins = load_bins(cfg.bins)
        self.index = BinIndex(self.bins)

    @property
    def num_bins(self) -> int:
        return len(self.bins)

    def input_channels(self, data_channels: int) -> int:
        return 1

    def build_head(self, channels: int) -> nn.Module:
        return nn.Conv2d(channels, self.num_bins, 1, bias=True)

    def prepare(self, images, labels):
        """Normalised RGB batch -> (standardised L (B, 1, H, W), ab bin per pixel (B, H, W))."""
        mean, std = self.mean.to(images), self.std.to(images)
        lab = rgb_to_lab((images * std + mean).clamp(0, 1))
        inputs = (lab[:, :1] / 100.0 - self.l_mean) / self.l_std
        return inputs, self.index(lab[:, 1:])

    def loss(self, outputs, targets):
        logits = per_pixel_logits(outputs, targets.shape[-2:])
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)

    def metrics(self, outputs, targets):
        logits = per_pixel_logits(outputs, targets.shape[-2:])
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit = top == targets.unsqueeze(1)
        return {"top1": hit[:, 0].float().mean().item(), "top5": hit.any(dim=1).float().mean().item()}
