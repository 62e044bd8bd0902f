"""DARTS evaluation networks built from a genotype (docs/methods/darts.md §1.5-1.7).

`darts-cifar`: stem conv, `layers` cells with reductions at 1/3 and 2/3 of the depth, auxiliary
head after the second reduction. `darts-imagenet`: the mobile setting with two stride-2 stems
(224 px in, 7x7 before the head). Both take any input channels, resolution and head.
`model.reductions=1` keeps only the first reduction cell: the UnNAS segmentation network
(supp B.2, "the last stride-2 layer becomes stride 1"), output stride 16 with the ImageNet stems.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch
from torch import nn

from archsearch.config import ModelConfig, opt
from archsearch.models.base import MODELS, Head, ModelFamily
from archsearch.spaces.darts.formats import write_genotype
from archsearch.spaces.darts.genotype import Genotype, resolve_genotype
from archsearch.spaces.darts.ops import FactorizedReduce, ReLUConvBN, create_op
from archsearch.spaces.darts.pricing import CIFAR, IMAGENET
from archsearch.spaces.darts.supernet import check_cells, reduction_layers


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """Zero whole samples with probability p and rescale the rest (out of place: autograd-safe)."""
    keep = 1.0 - p
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class EvalCell(nn.Module):
    """Two ops per node, as the genotype lists them; output = concat of the listed states."""

    def __init__(self, genotype: Genotype, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        cell = genotype.reduce if reduction else genotype.normal
        self.concat = list(genotype.reduce_concat if reduction else genotype.normal_concat)
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        self.sources = [src for _, src in cell]
        self.ops = nn.ModuleList(
            create_op(op, c, 2 if reduction and src < 2 else 1, affine=True, search=False) for op, src in cell
        )
        # Drop path spares identities (stride-1 skips): dropping them would drop the input itself.
        self.droppable = [not isinstance(op, nn.Identity) for op in self.ops]
        self.multiplier = len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(0, len(self.ops), 2):
            node = 0
            for j in (i, i + 1):
                h = self.ops[j](states[self.sources[j]])
                if self.training and drop_prob > 0 and self.droppable[j]:
                    h = drop_path(h, drop_prob)
                node = node + h
            states.append(node)
        return torch.cat([states[k] for k in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """ReLU, 5x5 average pool, 1x1 conv to 128, 2x2 conv to 768, then the task head (training only).

    `final_bn` is False for the ImageNet network, whose published models lack that BN. On maps
    too small for the 5x5 pool to leave 2x2 (e.g. 7x7 from 28 px inputs) an adaptive 2x2 average
    pool takes its place; at the papers' sizes (8x8 CIFAR, 7x7 ImageNet) the pool is theirs.
    """

    def __init__(self, c: int, size: int, pool_stride: int, head: Head, final_bn: bool = True):
        super().__init__()
        fits = size >= 5 and (size - 5) // pool_stride + 1 >= 2
        pool = (nn.AvgPool2d(5, stride=pool_stride, padding=0, count_include_pad=False) if fits
                else nn.AdaptiveAvgPool2d(2))
        self.features = nn.Sequential(
            nn.ReLU(),  # not in place: its input is the trunk's state
            pool,
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            *([nn.BatchNorm2d(768)] if final_bn else []),
            nn.ReLU(inplace=True),
        )
        self.head = head(768)

    def forward(self, x):
        return self.head(self.features(x))


class DartsNetwork(nn.Module):
    """Stems, cells, head; `drop_path_prob` is set by the trainer each epoch.

    One stem feeds both inputs of the first cell (CIFAR); with two, the second runs on the
    first's output and the first cell sees (stem 0, stem 1) (ImageNet).
    """

    def __init__(self, genotype: Genotype, stems: list[nn.Module], c: int, c_stem: int, size: int, layers: int,
                 head: Head, auxiliary: bool, aux_pool_stride: int, aux_final_bn: bool, num_reductions: int = 2):
        """`size` is the resolution of the first cell's input s1."""
        super().__init__()
        self.stems = nn.ModuleList(stems)
        reduction_prev = len(stems) == 2  # stem 0 then has twice the resolution of stem 1
        self.drop_path_prob = 0.0
        reductions = reduction_layers(layers, num_reductions)
        self.reduction_cells = reductions
        self.aux_after = reductions[-1] if auxiliary else None
        c_pp, c_p = c_stem, c_stem
        self.cells = nn.ModuleList()
        self.aux_head: Optional[AuxiliaryHead] = None
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
                size = (size + 1) // 2
            cell = EvalCell(genotype, c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c
            if i == self.aux_after:
                self.aux_head = AuxiliaryHead(c_p, size, aux_pool_stride, head, aux_final_bn)
        self.head = head(c_p)

    def forward(self, x):
        s0 = s1 = self.stems[0](x)
        if len(self.stems) == 2:
            s1 = self.stems[1](s0)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_after and self.training:
                aux = self.aux_head(s1)
        logits = self.head(s1)
        return (logits, aux) if aux is not None else logits

    def num_params(self, include_aux: bool = False) -> int:
        aux = 0 if self.aux_head is None or include_aux else sum(p.numel() for p in self.aux_head.parameters())
        return sum(p.numel() for p in self.parameters()) - aux


class _DartsFamily(ModelFamily):
    def resolve(self, ref: str) -> Genotype:
        return resolve_genotype(ref)

    def arch_to_dict(self, arch: Genotype) -> dict:
        return arch.to_dict()

    def arch_from_dict(self, d: dict) -> Genotype:
        return Genotype.from_dict(d)

    def show(self, arch: Genotype) -> list[str]:
        """Per cell kind, each node's two inputs and the concatenated nodes."""
        lines = []
        for kind in ("normal", "reduce"):
            cell = getattr(arch, kind)
            nodes = "  ".join(f"{i}: {cell[2 * i][0]}<-{cell[2 * i][1]}, {cell[2 * i + 1][0]}<-{cell[2 * i + 1][1]}"
                              for i in range(len(cell) // 2))
            lines.append(f"{kind:7s} {nodes}  concat {list(getattr(arch, kind + '_concat'))}")
        return lines

    def price(self, arch: Genotype, sizes: dict[str, int], imagenet: bool) -> list[tuple[str, int, int]]:
        """The papers' CIFAR (C=36 x 20 cells) and ImageNet (C=48 x 14) networks, or one of `sizes`."""
        nets = [replace(IMAGENET if imagenet else CIFAR, **sizes)] if sizes or imagenet else [CIFAR, IMAGENET]
        costs = [net.cost(arch) for net in nets]  # bad sizes fail before anything is returned
        return [(net.describe(), cost.params, cost.macs) for net, cost in zip(nets, costs)]

    def write(self, arch: Genotype, fmt: str) -> str:
        return write_genotype(arch, fmt)


@dataclass
class DartsModelConfig(ModelConfig):
    """The DARTS evaluation networks (`darts-cifar`, `darts-imagenet`)."""

    name: str = "darts-cifar"
    init_channels: int = opt(36, "channels of the first cells (C)", low=2)
    layers: int = opt(20, "cells; the reductions sit at 1/3 and 2/3 of the depth", low=1)
    stem_multiplier: int = opt(3, "the CIFAR stem has stem_multiplier * C channels", low=1)
    auxiliary: bool = opt(True, "auxiliary head after the second reduction (training only)")
    aux_weight: float = opt(0.4, "weight of the auxiliary loss", low=0.0)
    drop_path: float = opt(0.2, "final drop-path probability, reached linearly from 0", low=0.0, high=0.99)
    reductions: int = opt(2, "1: the second reduction cell becomes a normal cell (segmentation, stride 16)",
                          low=1, high=2)

    def check(self, where: str) -> None:
        check_cells(self.layers, self.reductions, where)


@MODELS.register("darts-cifar", config=DartsModelConfig)
class DartsCifar(_DartsFamily):
    def build(self, arch, cfg, in_channels, image_size, head):
        c = cfg.init_channels
        c_stem = cfg.stem_multiplier * c
        stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        return DartsNetwork(arch, [stem], c, c_stem, image_size, cfg.layers, head, cfg.auxiliary,
                            aux_pool_stride=3, aux_final_bn=True, num_reductions=cfg.reductions)


@MODELS.register("darts-imagenet", config=DartsModelConfig)
class DartsImageNet(_DartsFamily):
    def build(self, arch, cfg, in_channels, image_size, head):
        c = cfg.init_channels
        stem0 = nn.Sequential(
            nn.Conv2d(in_channels, c // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c),
        )
        stem1 = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c))
        size = image_size
        for _ in range(3):  # three stride-2 convs before the first cell's s1
            size = (size + 1) // 2
        return DartsNetwork(arch, [stem0, stem1], c, c, size, cfg.layers, head, cfg.auxiliary,
                            aux_pool_stride=2, aux_final_bn=False, num_reductions=cfg.reductions)
