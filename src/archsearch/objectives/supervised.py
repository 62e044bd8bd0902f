"""Supervised classification: the labels are the targets."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.objectives.base import OBJECTIVES, Objective


def classifier_head(channels: int, num_classes: int) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return (top == targets.unsqueeze(1)).any(dim=1).float().mean().item()


@OBJECTIVES.register("supervised")
class Supervised(Objective):
    name = "supervised"

    def __init__(self, cfg, info):
        self.num_classes = info.num_classes
        self.label_smoothing = cfg.label_smoothing

    def build_head(self, channels: int) -> nn.Module:
        return classifier_head(channels, self.num_classes)

    def prepare(self, images, labels):
        return images, labels

    def loss(self, outputs, targets):
        return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)

    def metrics(self, outputs, targets):
        return {"top1": topk_accuracy(outputs, targets, 1), "top5": topk_accuracy(outputs, targets, 5)}
