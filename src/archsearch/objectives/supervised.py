"""Supervised classification: the labels are the targets."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.config import ObjectiveConfig, opt
from archsearch.objectives.base import OBJECTIVES, Objective


@dataclass
class SupervisedConfig(ObjectiveConfig):
    name: str = "supervised"
    head_dropout: float = opt(0.0, "dropout before the classifier (SGNAS ImageNet: 0.2)", low=0.0, high=0.99)


def classifier_head(channels: int, num_classes: int, dropout: float = 0.0) -> nn.Module:
    """Pool, (dropout,) linear; without dropout the module names stay those of older model files."""
    drop = [nn.Dropout(dropout)] if dropout > 0 else []
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), *drop, nn.Linear(channels, num_classes))


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return (top == targets.unsqueeze(1)).any(dim=1).float().mean().item()


def top1_correct(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the top-1 prediction is the target (the samples `topk_accuracy(..., 1)` counts)."""
    return logits.topk(1, dim=1).indices[:, 0] == targets


@OBJECTIVES.register("supervised", config=SupervisedConfig)
class Supervised(Objective):
    name = "supervised"

    def __init__(self, cfg, info):
        self.num_classes = info.num_classes
        self.label_smoothing = cfg.label_smoothing
        self.dropout = cfg.head_dropout

    def build_head(self, channels: int) -> nn.Module:
        return classifier_head(channels, self.num_classes, self.dropout)

    def prepare(self, images, labels):
        return images, labels

    def loss(self, outputs, targets):
        return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)

    def metrics(self, outputs, targets):
        return {"top1": topk_accuracy(outputs, targets, 1), "top5": topk_accuracy(outputs, targets, 5)}

    def sample_correct(self, outputs, targets):
        return top1_correct(outputs, targets)
