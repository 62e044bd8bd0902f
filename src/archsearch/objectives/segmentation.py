"""Supervised semantic segmentation (UnNAS `seg`, docs/methods/unnas.md §1.5, §2.4): ASPP head, per-pixel CE, mIoU.

The network returns logits at the trunk's resolution (output stride 16 for the one-reduction
DARTS network); the loss and the metrics upsample them bilinearly (align_corners=True) to the
label map, so the network itself stays independent of the input size. Pixels labelled 255 are
ignored everywhere.

mIoU is a whole-set quantity: `metric_sums` returns per-class intersection and union pixel
counts, which the engine adds up over every batch and rank before `reduce_metrics` divides.
mIoU is the mean over classes of (sum of intersections) / (sum of unions). A class absent from
both the predictions and the labels of the whole set (union 0) has no IoU and is left out of
the mean, as in the Cityscapes benchmark scripts; on Cityscapes val every class occurs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.config import ObjectiveConfig, opt
from archsearch.errors import ConfigError, DataError
from archsearch.objectives.base import OBJECTIVES, Objective

IGNORE_INDEX = 255


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ImagePooling(nn.Module):
    """Global average pool, 1x1 conv-BN-ReLU, broadcast back to the feature size.

    Bilinear upsampling of a 1x1 map with align_corners=True is a constant map, so `expand` is
    the same operation without the interpolation kernel.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = conv_bn_relu(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.adaptive_avg_pool2d(x, 1))
        return y.expand(-1, -1, x.shape[-2], x.shape[-1])


class ASPP(nn.Module):
    """DeepLabv3 atrous spatial pyramid pooling: a 1x1 branch, one 3x3 branch per rate
    (dilation = padding = rate), image pooling; concat, 1x1 projection, 1x1 classifier (bias)."""

    def __init__(self, c_in: int, channels: int, rates: tuple[int, ...], num_classes: int):
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(c_in, channels, 1)]
            + [conv_bn_relu(c_in, channels, 3, rate) for rate in rates]
            + [ImagePooling(c_in, channels)]
        )
        self.project = conv_bn_relu(len(self.branches) * channels, channels, 1)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.project(torch.cat([b(x) for b in self.branches], dim=1)))


def upsample_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Per-pixel logits at the label resolution (a no-op when the sizes already agree)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=True)


@dataclass
class SegmentationConfig(ObjectiveConfig):
    """The ASPP head (DeepLabv3): 256 channels and rates 6/12/18 to evaluate, 64 and [6] to search."""

    name: str = "segmentation"
    aspp_channels: int = opt(256, low=1)
    aspp_rates: List[int] = opt([6, 12, 18], "atrous rates of the ASPP branches")

    def check(self, where: str) -> None:
        if not self.aspp_rates or any(r < 1 for r in self.aspp_rates):
            raise ConfigError(f"{where}.aspp_rates must be positive, got {list(self.aspp_rates)}")


@OBJECTIVES.register("segmentation", config=SegmentationConfig)
class Segmentation(Objective):
    """Targets are (N, H, W) label maps of train ids in [0, classes) or 255 (ignored)."""

    name = "segmentation"
    main_metric = "miou"

    def __init__(self, cfg, info):
        seg = cfg
        self.num_classes = info.num_classes
        self.channels = seg.aspp_channels
        self.rates = tuple(seg.aspp_rates)
        self.label_smoothing = cfg.label_smoothing

    def build_head(self, channels: int) -> nn.Module:
        return ASPP(channels, self.channels, self.rates, self.num_classes)

    def prepare(self, images, labels):
        if labels.ndim != 3:
            raise DataError(f"the segmentation objective needs (N, H, W) label maps, got labels of shape "
                            f"{tuple(labels.shape)}; use a segmentation dataset (cityscapes)")
        return images, labels.long()

    def loss(self, outputs, targets):
        logits = upsample_logits(outputs.float(), targets.shape[-2:])
        total = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum",
                                label_smoothing=self.label_smoothing)
        # the mean over labelled pixels; a batch with none of them contributes 0, not NaN
        return total / (targets != IGNORE_INDEX).sum().clamp_min(1)

    def metrics(self, outputs, targets):
        return self.reduce_metrics(self.metric_sums(outputs, targets))

    def confusion(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(classes, classes) pixel counts, rows = label, columns = prediction, ignored pixels out."""
        pred = upsample_logits(outputs, targets.shape[-2:]).argmax(dim=1)
        valid = targets != IGNORE_INDEX
        t, p = targets[valid], pred[valid]
        k = self.num_classes
        if t.numel() and int(t.max()) >= k:
            raise DataError(f"label {int(t.max())} in a {k}-class segmentation set (only 0..{k - 1} and "
                            f"{IGNORE_INDEX} are allowed)")
        return torch.bincount(t * k + p, minlength=k * k).view(k, k)

    def metric_sums(self, outputs, targets):
        cm = self.confusion(outputs, targets).double()
        inter = cm.diagonal()
        union = cm.sum(0) + cm.sum(1) - inter
        stats = torch.cat([inter, union, cm.sum().view(1), inter.sum().view(1)]).tolist()  # one sync
        k = self.num_classes
        sums = {f"intersection_{c}": stats[c] for c in range(k)}
        sums.update({f"union_{c}": stats[k + c] for c in range(k)})
        sums.update(pixels=stats[2 * k], correct=stats[2 * k + 1])
        return sums

    def reduce_metrics(self, sums):
        ious = [sums[f"intersection_{c}"] / sums[f"union_{c}"]
                for c in range(self.num_classes) if sums[f"union_{c}"] > 0]
        return {
            "miou": sum(ious) / len(ious) if ious else 0.0,
            "pixel_acc": sums["correct"] / max(sums["pixels"], 1.0),
        }
