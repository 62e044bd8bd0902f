"""Jigsaw puzzles (Noroozi & Favaro 2016, as used by UnNAS; docs/methods/unnas.md §1.4).

An image is cut into a G x G grid of cells; from each cell a t x t tile is taken at a random
offset (the gap stops the network from matching edges), standardised on its own (mean 0,
std 1 over its channels and pixels), and the tiles are shuffled by one permutation of a fixed
set: the tile of grid position k goes to slot perm[k]. The class is the permutation's index.

How the network sees a puzzle (context-free, as the authors): the B x G^2 tiles are one batch of
independent images through the shared trunk, and the head pools each tile's feature map,
concatenates a puzzle's G^2 vectors in slot order and maps them to the permutations with one
linear layer. So prepare returns (B*G^2, C, t, t) inputs, the network input size is the tile
size (`input_size`), and strategies need no change: model(inputs, weights) just works.

Random choices (permutation, tile offsets, grayscale) come from a generator seeded by the batch
content, so preparing the same batch twice gives the same puzzles (see objectives/base.py).

Permutation sets: a 2x2 grid uses all 24 permutations; larger sets are chosen greedily for
large Hamming distance (each new permutation maximises its minimum distance to those chosen,
ties broken by the larger total distance, then by a seeded order), which keeps every pair at
least `MIN_HAMMING_3X3` apart for the shipped 1000 of 9 tiles (Noroozi's "maximal" set only
maximises the average and has pairs 2 apart). The set is a prefix-stable sequence: the first N
of the shipped 1000 are the greedy set of size N.
"""
from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.config import ObjectiveConfig, opt
from archsearch.errors import ConfigError, DataError
from archsearch.objectives.base import OBJECTIVES, Objective, batch_seed
from archsearch.objectives.supervised import top1_correct, topk_accuracy

log = logging.getLogger("archsearch")

PERMS_FILE = Path(__file__).parent / "data" / "jigsaw_perms_3x3.json"
PERMS_SEED = 0
MIN_HAMMING_3X3 = 5  # minimum pairwise distance of the shipped 1000 (checked by the tests)
DEFAULT_COUNT = {2: 24, 3: 1000}
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as PIL's convert("L")


def all_permutations(n: int) -> torch.Tensor:
    """Every permutation of n items in lexicographic order, (n!, n) uint8 (itertools' order)."""
    perms = torch.zeros(1, 0, dtype=torch.uint8)
    for k in range(1, n + 1):  # from the permutations of k - 1 items to those of k
        blocks = []
        for first in range(k):
            rest = torch.tensor([i for i in range(k) if i != first], dtype=torch.uint8)
            blocks.append(torch.cat([torch.full((len(perms), 1), first, dtype=torch.uint8), rest[perms.long()]], 1))
        perms = torch.cat(blocks)
    return perms


def greedy_permutations(n: int, count: int, seed: int = PERMS_SEED) -> torch.Tensor:
    """`count` permutations of n items chosen greedily for a large minimum Hamming distance."""
    candidates = all_permutations(n)
    if count > len(candidates):
        raise ConfigError(f"{n} tiles have only {len(candidates)} permutations, {count} asked")
    order = list(range(len(candidates)))
    random.Random(seed).shuffle(order)  # int-seeded random.Random is stable across Python versions
    candidates = candidates[torch.tensor(order)]
    columns = candidates.T.contiguous()  # comparing column by column is the fast way on CPU
    scale = n * count + 1  # the total distance never reaches this, so min distance ranks first
    min_dist = torch.full((len(candidates),), n, dtype=torch.int32)
    total = torch.zeros(len(candidates), dtype=torch.int32)
    chosen = [0]  # the first candidate in the seeded order
    for _ in range(count - 1):
        last = candidates[chosen[-1]]
        same = torch.zeros(len(candidates), dtype=torch.int32)
        for j in range(n):
            same += columns[j] == last[j]
        d = n - same
        torch.minimum(min_dist, d, out=min_dist)
        total += d
        chosen.append(int(torch.argmax(min_dist * scale + total)))  # the first maximum
    return candidates[torch.tensor(chosen)]


@lru_cache(maxsize=8)
def permutation_set(grid: int, count: int = 0) -> torch.Tensor:
    """The class set of a grid: (count, grid^2) int64, count 0 meaning the grid's default."""
    if grid < 2:
        raise ConfigError(f"objective.grid must be at least 2, got {grid}")
    n = grid * grid
    if grid > 3:
        raise ConfigError(f"objective.grid {grid} is not supported: its {n}! permutations "
                          "are too many to choose from exhaustively; use 2 or 3")
    count = count or DEFAULT_COUNT[grid]
    if count < 2:
        raise ConfigError(f"objective.num_permutations must be at least 2, got {count}")
    if grid == 2:
        perms = all_permutations(n)
        if count > len(perms):
            raise ConfigError(f"a 2x2 grid has only {len(perms)} permutations, {count} asked")
        return perms[:count].long()
    shipped = torch.tensor(json.loads(PERMS_FILE.read_text())["permutations"], dtype=torch.int64)
    if count <= len(shipped):
        return shipped[:count]
    log.info("choosing %d jigsaw permutations of %d tiles (not in the shipped set)", count, n)
    return greedy_permutations(n, count).long()


def cut_tiles(images: torch.Tensor, grid: int, tile: int, offsets: torch.Tensor) -> torch.Tensor:
    """(B, C, S, S) -> (B, grid^2, C, tile, tile): from cell k (row-major) the tile whose top-left
    corner is at offsets[b, k] = (dy, dx) inside the cell."""
    b, c, s, _ = images.shape
    cell = s // grid
    k = torch.arange(grid * grid, device=images.device)
    top = (k // grid) * cell + offsets[..., 0]  # (B, K)
    left = (k % grid) * cell + offsets[..., 1]
    r = torch.arange(tile, device=images.device)
    rows = (top.unsqueeze(-1) + r)[:, :, :, None]  # (B, K, t, 1)
    cols = (left.unsqueeze(-1) + r)[:, :, None, :]  # (B, K, 1, t)
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    # advanced indices separated by a slice: the indexed dims come first -> (B, K, t, t, C)
    return images[batch, :, rows, cols].permute(0, 1, 4, 2, 3)


def shuffle_tiles(tiles: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """Write the tile of grid position k into slot perms[b, k]: out[b, perms[b, k]] = tiles[b, k]."""
    inverse = torch.argsort(perms, dim=1)  # inverse[b, slot] = grid position shown in that slot
    index = inverse.view(*inverse.shape, 1, 1, 1).expand_as(tiles)
    return torch.gather(tiles, 1, index)


def standardise_tiles(tiles: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each tile to mean 0 and std 1 over its channels and pixels (a flat tile becomes 0)."""
    flat = tiles.flatten(-3)
    mean = flat.mean(dim=-1, keepdim=True)
    std = flat.std(dim=-1, unbiased=False, keepdim=True)
    return ((flat - mean) / std.clamp_min(eps)).view_as(tiles)


class JigsawHead(nn.Module):
    """Pool every tile, concatenate a puzzle's tiles in slot order, one linear layer."""

    def __init__(self, channels: int, tiles: int, num_classes: int):
        super().__init__()
        self.tiles = tiles
        self.fc = nn.Linear(tiles * channels, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(features, 1).flatten(1)  # (B*K, C)
        return self.fc(pooled.reshape(-1, self.tiles * pooled.shape[1]))


def tile_geometry(image_size: int, grid: int, fraction: float, tile_size: int) -> tuple[int, int]:
    """(cell side, tile side) for a square image."""
    cell = image_size // grid
    tile = tile_size or math.floor(fraction * cell)
    if not 0 < tile <= cell:
        raise ConfigError(
            f"jigsaw tiles of {tile} px do not fit the {cell} px cells of a {grid}x{grid} grid on "
            f"{image_size} px images; set objective.tile_size or data.image_size"
        )
    return cell, tile


@dataclass
class JigsawConfig(ObjectiveConfig):
    """UnNAS jigsaw puzzles (docs/methods/unnas.md §1.4)."""

    name: str = "jigsaw"
    grid: int = opt(3, "3x3 tiles (ImageNet, Cityscapes) or 2x2 (CIFAR-size images)", low=2)
    num_permutations: int = opt(0, "classes; 0 = 1000 for a 3x3 grid, all 24 for 2x2", low=0)
    tile_fraction: float = opt(0.76, "tile side = floor(fraction * cell side), the rest is a random gap",
                               above=0.0, high=1.0)
    tile_size: int = opt(0, "explicit tile side; 0 = from tile_fraction", low=0)
    gray_prob: float = opt(0.3, "colour images only: chance a puzzle is shown in grayscale", low=0.0, high=1.0)


@OBJECTIVES.register("jigsaw", config=JigsawConfig)
class Jigsaw(Objective):
    name = "jigsaw"

    def __init__(self, cfg, info):
        c = cfg
        self.grid = c.grid
        self.tiles = self.inputs_per_sample = c.grid * c.grid
        self.perms = permutation_set(c.grid, c.num_permutations)
        self.image_size = info.image_size
        self.cell, self.tile = tile_geometry(info.image_size, c.grid, c.tile_fraction, c.tile_size)
        # grayscale removes chromatic-aberration shortcuts; a 1-channel dataset has none
        self.gray_prob = c.gray_prob if info.in_channels == 3 else 0.0
        self.mean = torch.tensor(info.mean).view(-1, 1, 1)
        self.std = torch.tensor(info.std).view(-1, 1, 1)
        self.label_smoothing = cfg.label_smoothing

    @property
    def num_classes(self) -> int:
        return len(self.perms)

    def input_size(self, image_size: int) -> int:
        return tile_geometry(image_size, self.grid, 0.0, self.tile)[1]

    def build_head(self, channels: int) -> nn.Module:
        return JigsawHead(channels, self.tiles, self.num_classes)

    def _gray(self, images: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """Replace the chosen (normalised RGB) images by their luma in all three channels."""
        mean, std = self.mean.to(images), self.std.to(images)
        rgb = images[which] * std + mean
        luma = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(3, 1, 1)
        gray = (rgb * luma).sum(dim=1, keepdim=True)
        out = images.clone()
        out[which] = (gray - mean) / std
        return out

    def prepare(self, images, labels):
        b, _, h, w = images.shape
        if h != w or h != self.image_size:
            raise DataError(f"jigsaw expects square {self.image_size} px images, got {h}x{w}")
        gen = torch.Generator().manual_seed(batch_seed(images, "jigsaw"))
        targets = torch.randint(len(self.perms), (b,), generator=gen)
        offsets = torch.randint(self.cell - self.tile + 1, (b, self.tiles, 2), generator=gen)
        gray = torch.rand(b, generator=gen) < self.gray_prob
        device = images.device
        if gray.any():
            images = self._gray(images, gray.to(device))
        tiles = cut_tiles(images, self.grid, self.tile, offsets.to(device))
        tiles = shuffle_tiles(standardise_tiles(tiles), self.perms.to(device)[targets.to(device)])
        return tiles.flatten(0, 1), targets.to(device)

    def loss(self, outputs, targets):
        return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)

    def metrics(self, outputs, targets):
        return {"top1": topk_accuracy(outputs, targets, 1), "top5": topk_accuracy(outputs, targets, 5)}

    def sample_correct(self, outputs, targets):
        return top1_correct(outputs, targets)  # one sample per puzzle
