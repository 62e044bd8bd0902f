"""Analytic parameter and mult-add counts of a genotype's evaluation network.

Counted from the layer formulas (docs/methods/darts.md §1.1, §1.5, §1.7) without building the network:
BN layers are affine (2 parameters per channel), the auxiliary head is excluded as in the
papers, and mult-adds count convolutions and the classifier only.
"""
from __future__ import annotations

from dataclasses import dataclass

from archsearch.spaces.darts.genotype import Genotype
from archsearch.spaces.darts.supernet import reduction_layers


@dataclass
class Cost:
    params: int = 0
    macs: int = 0

    def __iadd__(self, other: "Cost") -> "Cost":
        self.params += other.params
        self.macs += other.macs
        return self


def conv(c_in, c_out, k, h_out, w_out=None, groups=1, bn=True) -> Cost:
    """Conv (no bias) optionally followed by an affine BN; k may be (kh, kw)."""
    kh, kw = (k, k) if isinstance(k, int) else k
    w_out = h_out if w_out is None else w_out
    weights = c_in // groups * c_out * kh * kw
    return Cost(weights + (2 * c_out if bn else 0), weights * h_out * w_out)


def halved(h: int) -> int:
    """Side after a stride-2 layer of the network: every stride-2 op pads to ceil(h / 2)."""
    return (h + 1) // 2


def op_cost(name: str, c: int, stride: int, h: int) -> Cost:
    """Cost of one evaluation-network op on a c-channel, h x h input."""
    ho = halved(h) if stride == 2 else h
    if name in ("none", "noise", "max_pool_3x3", "avg_pool_3x3"):
        return Cost()
    if name == "skip_connect":
        return Cost() if stride == 1 else factorized_reduce(c, c, ho)
    if name.startswith(("sep_conv_", "dil_conv_")):
        k = int(name[-1])
        total = conv(c, c, k, ho, groups=c, bn=False)
        total += conv(c, c, 1, ho)
        if name.startswith("sep_conv_"):
            total += conv(c, c, k, ho, groups=c, bn=False)
            total += conv(c, c, 1, ho)
        return total
    if name == "conv_7x1_1x7":
        total = conv(c, c, (1, 7), h, ho, bn=False)
        total += conv(c, c, (7, 1), ho, ho)
        return total
    raise ValueError(f"no cost formula for op {name!r}")


def factorized_reduce(c_in, c_out, h_out) -> Cost:
    half = conv(c_in, c_out // 2, 1, h_out, bn=False)
    return Cost(2 * half.params + 2 * c_out, 2 * half.macs)


def network_cost(
    genotype: Genotype,
    init_channels: int = 36,
    layers: int = 20,
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: int = 32,
    imagenet: bool = False,
    stem_multiplier: int = 3,
    reductions: int = 2,
) -> Cost:
    """Params and mult-adds of the DARTS CIFAR (or ImageNet mobile) evaluation network.

    Any square input side works (odd sides too: stride-2 layers give ceil(h / 2), as built);
    `reductions=1` keeps the first reduction cell only (the segmentation backbone).
    """
    total = Cost()
    c = init_channels
    if imagenet:
        h = halved(image_size)
        total += conv(in_channels, c // 2, 3, h)
        h = halved(h)
        total += conv(c // 2, c, 3, h)
        h = halved(h)
        total += conv(c, c, 3, h)
        c_pp = c_p = c
        reduction_prev = True
    else:
        h = image_size
        c_pp = c_p = stem_multiplier * c
        total += conv(in_channels, c_pp, 3, h)
        reduction_prev = False
    for i in range(layers):
        reduction = i in reduction_layers(layers, reductions)
        if reduction:
            c *= 2
        cell = genotype.reduce if reduction else genotype.normal
        concat = genotype.reduce_concat if reduction else genotype.normal_concat
        total += factorized_reduce(c_pp, c, h) if reduction_prev else conv(c_pp, c, 1, h)
        total += conv(c_p, c, 1, h)
        h_out = halved(h) if reduction else h
        for op, src in cell:
            # In a reduction cell only the ops on the cell inputs (0, 1) have stride 2; an op on
            # an intermediate node runs at stride 1 on the already halved map.
            total += op_cost(op, c, 2, h) if reduction and src < 2 else op_cost(op, c, 1, h_out)
        h = h_out
        reduction_prev = reduction
        c_pp, c_p = c_p, len(concat) * c
    total += Cost(c_p * num_classes + num_classes, c_p * num_classes)
    return total
