"""The NAS-Bench-101 network built from a cell (docs/methods/nasbench101.md §2).

`nasbench101`: the benchmark's CIFAR network (google-research/nasbench `model_builder.py`): a
conv3x3-BN-ReLU stem to `width`, `stacks` of `modules_per_stack` cells, a 2x2 stride-2 max-pool
and twice the channels before every stack but the first, global average pool and a linear layer
(the objective's head). `nasbench101-imagenet`: UnNAS's variant (`pycls/models/nas_bench/`), a
stem of three stride-2 conv3x3-BN-ReLU layers and 4 cells a stack. Any input size, channels, head.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import nn

from archsearch.config import ModelConfig, opt
from archsearch.errors import ConfigError
from archsearch.models.base import MODELS, Head, ModelFamily
from archsearch.spaces.nasbench101.cell import Cell
from archsearch.spaces.nasbench101.cost import Layout, network_cost, vertex_channels
from archsearch.spaces.nasbench101.formats import read_cell, resolve_cell, write_cell


class ConvBnRelu(nn.Sequential):
    """Conv (no bias, 'same' padding), BN, ReLU: the benchmark's `conv_bn_relu`."""

    def __init__(self, c_in: int, c_out: int, k: int, bn: dict, stride: int = 1):
        super().__init__(nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out, **bn),
                         nn.ReLU())


VERTEX_OPS: dict[str, Callable[[int, dict], nn.Module]] = {
    "conv3x3-bn-relu": lambda c, bn: ConvBnRelu(c, c, 3, bn),
    "conv1x1-bn-relu": lambda c, bn: ConvBnRelu(c, c, 1, bn),
    "maxpool3x3": lambda c, bn: nn.MaxPool2d(3, 1, 1),
}


class NasBench101Cell(nn.Module):
    """One cell. A vertex sums its inputs: interior vertices cut to its width, the cell input through
    a 1x1 projection. The output concatenates the vertices that feed it, plus the projected input
    when the input feeds it too (or is only that projection)."""

    def __init__(self, cell: Cell, c_in: int, c_out: int, bn: dict):
        super().__init__()
        cell = cell.pruned
        n, m = cell.vertices, cell.matrix
        self.channels = vertex_channels(c_in, c_out, cell)
        self.sources = [[u for u in range(1, v) if m[u][v]] for v in range(n)]
        self.concat = [v for v in range(1, n - 1) if m[v][n - 1]]
        self.project = nn.ModuleDict({str(v): ConvBnRelu(c_in, self.channels[v], 1, bn)
                                      for v in range(1, n) if m[0][v]})
        self.ops = nn.ModuleDict({str(v): VERTEX_OPS[cell.ops[v]](self.channels[v], bn) for v in range(1, n - 1)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        for v in range(1, len(self.channels) - 1):
            inputs = [states[u][:, : self.channels[v]] for u in self.sources[v]]
            if str(v) in self.project:
                inputs.append(self.project[str(v)](x))
            total = inputs[0]
            for t in inputs[1:]:
                total = total + t
            states.append(self.ops[str(v)](total))
        out = torch.cat([states[v] for v in self.concat], 1) if self.concat else None
        last = str(len(self.channels) - 1)
        if last in self.project:
            out = self.project[last](x) if out is None else out + self.project[last](x)
        return out


class NasBench101Network(nn.Module):
    def __init__(self, cell: Cell, layout: Layout, in_channels: int, head: Head, bn: dict):
        super().__init__()
        layout.check()
        stride = 2 if layout.imagenet_stem else 1
        self.stem = nn.Sequential(*(ConvBnRelu(i, o, 3, bn, stride) for i, o in layout.stem(in_channels)))
        layers: list[nn.Module] = []
        c = layout.width
        for stack in range(layout.stacks):
            c_in = c
            if stack > 0:
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))  # TF 'same': ceil(h / 2)
                c *= 2
            for _ in range(layout.modules_per_stack):
                layers.append(NasBench101Cell(cell, c_in, c, bn))
                c_in = c
        self.cells = nn.Sequential(*layers)
        self.head = head(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cells(self.stem(x)))


@dataclass
class NasBench101ModelConfig(ModelConfig):
    """The NAS-Bench-101 network (`nasbench101`: CIFAR stem; `nasbench101-imagenet`: UnNAS's stride-8 stem)."""

    name: str = "nasbench101"
    width: int = opt(128, "channels after the stem (the first stack's cells)", low=2)
    stacks: int = opt(3, "stacks of cells; a 2x2 max-pool and twice the channels before each one but the first",
                      low=1)
    modules_per_stack: int = opt(3, "cells per stack (UnNAS's ImageNet network: 4)", low=1)
    bn_momentum: float = opt(0.003, "BN momentum, PyTorch convention: the benchmark's TF decay 0.997 "
                                    "(UnNAS's port: 0.1, with precise BN)", above=0.0, high=1.0)
    bn_eps: float = opt(1e-5, "BN epsilon (the benchmark's)", above=0.0)

    def check(self, where: str) -> None:
        if self.drop_path:
            raise ConfigError(f"{where}: the NAS-Bench-101 network has no drop path (drop_path must be 0)")


@dataclass
class NasBench101ImageNetConfig(NasBench101ModelConfig):
    name: str = "nasbench101-imagenet"
    modules_per_stack: int = opt(4, "cells per stack (UnNAS's ImageNet network: 4)", low=1)


CIFAR = Layout()
IMAGENET = Layout(modules_per_stack=4, imagenet_stem=True)
SIZE_FLAGS = {"channels": "width", "cells": "modules_per_stack"}  # `archsearch genotype` flag -> Layout field


class _NasBench101Family(ModelFamily):
    imagenet_stem = False

    def resolve(self, ref: str) -> Cell:
        return resolve_cell(ref)

    def arch_to_dict(self, arch: Cell) -> dict:
        d = arch.to_dict()
        if arch.network:
            d["network"] = dict(arch.network)
        return d

    def arch_from_dict(self, d: dict) -> Cell:
        return read_cell(d, "architecture")

    def build(self, arch, cfg, in_channels, image_size, head):
        layout = Layout(cfg.width, cfg.stacks, cfg.modules_per_stack, self.imagenet_stem)
        return NasBench101Network(arch, layout, in_channels, head, {"momentum": cfg.bn_momentum, "eps": cfg.bn_eps})

    def show(self, arch: Cell) -> list[str]:
        """The pruned cell: each vertex's op and inputs, the edge count and the benchmark's hash."""
        from archsearch.spaces.nasbench101.space import show_cell

        return show_cell(arch)

    def price(self, arch: Cell, sizes: dict[str, int], imagenet: bool) -> list[tuple[str, int, int]]:
        """The sizes the file states, else the benchmark's CIFAR network and UnNAS's ImageNet one; flags
        override (--channels: width, --cells: cells per stack)."""
        stated = dict(arch.network or {})
        if sizes or imagenet or stated:
            nets = [_network(stated, sizes, imagenet)]
        else:
            nets = [_network({}, {}, False), _network({}, {}, True)]
        costs = [network_cost(arch, layout, classes, in_ch, size) for layout, classes, size, in_ch, _ in nets]
        return [(desc, c.params, c.macs) for (*_, desc), c in zip(nets, costs)]

    def write(self, arch: Cell, fmt: str) -> str:
        return write_cell(arch, fmt)


def _network(stated: dict, sizes: dict, imagenet: bool) -> tuple[Layout, int, int, int, str]:
    """(layout, classes, image size, input channels, description) from the file's sizes and the flags."""
    imagenet = imagenet or stated.get("stem") == "imagenet"
    layout = IMAGENET if imagenet else CIFAR
    given = {**stated, **{SIZE_FLAGS.get(k, k): v for k, v in sizes.items()}}
    layout = replace(layout, **{k: given[k] for k in ("width", "stacks", "modules_per_stack") if k in given})
    classes = given.get("classes", 1000 if imagenet else 10)
    size = given.get("image_size", 224 if imagenet else 32)
    in_ch = given.get("in_channels", 3)
    for name, v in (("classes", classes), ("image_size", size), ("in_channels", in_ch)):
        if v < 1:
            raise ConfigError(f"network size: {name} must be at least 1, got {v}")
    layout.check()
    default = "UnNAS's sizes" if imagenet else "the benchmark's sizes"
    source = {(True, False): "sizes the file states", (True, True): "sizes the file states and the flags",
              (False, True): "given sizes", (False, False): default}[bool(stated), bool(sizes)]
    stem = "ImageNet stem (UnNAS)" if imagenet else "CIFAR stem"
    extra = f", {in_ch} input channel{'s' * (in_ch != 1)}" if in_ch != 3 else ""
    desc = (f"NAS-Bench-101 network ({source}: {stem}, width {layout.width}, {layout.stacks} stacks x "
            f"{layout.modules_per_stack} cells, {size}px, {classes} classes{extra})")
    return layout, classes, size, in_ch, desc


@MODELS.register("nasbench101", config=NasBench101ModelConfig)
class NasBench101(_NasBench101Family):
    imagenet_stem = False


@MODELS.register("nasbench101-imagenet", config=NasBench101ImageNetConfig)
class NasBench101ImageNet(_NasBench101Family):
    imagenet_stem = True
