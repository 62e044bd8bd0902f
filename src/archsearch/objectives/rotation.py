"""Rotation prediction (Gidaris et al. 2018, as used by UnNAS; docs/methods/unnas.md §1.2).

Every image enters the batch in all four rotations (0, 90, 180, 270 degrees counter-clockwise in
the H-W plane, `torch.rot90(x, k, dims=(-2, -1))`), labelled k = 0..3, so a batch of B images is
a network batch of 4B samples, image-major: [x0 r0, x0 r1, x0 r2, x0 r3, x1 r0, ...]. The data
labels are ignored. Works on any number of channels.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from archsearch.config import ObjectiveConfig
from archsearch.errors import DataError
from archsearch.objectives.base import OBJECTIVES, Objective
from archsearch.objectives.supervised import classifier_head, top1_correct, topk_accuracy

ROTATIONS = 4


def rotate_all(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, S, S) -> the (4B, C, S, S) rotated copies and their (4B,) labels."""
    if images.shape[-1] != images.shape[-2]:
        raise DataError(f"rotation needs square images, got {tuple(images.shape[-2:])}")
    inputs = torch.stack([torch.rot90(images, k, dims=(-2, -1)) for k in range(ROTATIONS)], dim=1)
    labels = torch.arange(ROTATIONS, device=images.device).repeat(images.shape[0])
    return inputs.flatten(0, 1), labels


@dataclass
class RotationConfig(ObjectiveConfig):
    name: str = "rotation"


@OBJECTIVES.register("rotation", config=RotationConfig)
class Rotation(Objective):
    name = "rotation"
    num_classes = ROTATIONS

    def __init__(self, cfg, info):
        self.label_smoothing = cfg.label_smoothing

    def build_head(self, channels: int):
        return classifier_head(channels, ROTATIONS)

    def prepare(self, images, labels):
        return rotate_all(images)

    def loss(self, outputs, targets):
        return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)

    def metrics(self, outputs, targets):
        # top-5 of 4 classes is always 1; only top-1 means anything
        return {"top1": topk_accuracy(outputs, targets, 1)}

    def sample_correct(self, outputs, targets):
        return top1_correct(outputs, targets)  # one sample per rotated copy, image-major
