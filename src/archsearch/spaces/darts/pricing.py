"""Evaluation-network sizes to price a genotype at, checked before `network_cost` sees them."""
from __future__ import annotations

from dataclasses import dataclass

from archsearch.errors import ConfigError
from archsearch.spaces.darts.cost import Cost, network_cost
from archsearch.spaces.darts.genotype import Genotype
from archsearch.spaces.darts.supernet import reduction_layers


@dataclass(frozen=True)
class NetworkSize:
    """The DARTS CIFAR network (one stem) or the ImageNet one (three stride-2 stem convs)."""

    channels: int
    cells: int
    classes: int
    image_size: int
    in_channels: int = 3
    imagenet: bool = False

    def check(self) -> None:
        """Sizes the network builder would refuse or that would price a network with no pixels left."""
        for name in ("channels", "cells", "classes", "image_size", "in_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"network size: {name} must be at least 1, got {getattr(self, name)}")
        if self.imagenet and self.channels % 2:
            raise ConfigError(f"network size: the ImageNet network needs an even channel count (its stem has C/2 "
                              f"channels and FactorizedReduce splits C in two), got {self.channels}")
        halvings = len(reduction_layers(self.cells)) + (3 if self.imagenet else 0)
        if self.image_size < 2 ** halvings:
            raise ConfigError(f"network size: image size {self.image_size} is too small: this network halves it "
                              f"{halvings} times (at least {2 ** halvings})")

    def cost(self, genotype: Genotype) -> Cost:
        self.check()
        return network_cost(genotype, self.channels, self.cells, self.classes, self.in_channels, self.image_size,
                            self.imagenet)

    def describe(self) -> str:
        """`CIFAR network (C=36, 20 cells)`, naming the other sizes where they differ from the family's."""
        default = IMAGENET if self.imagenet else CIFAR
        extra = [f"{self.classes} classes" if self.classes != default.classes else "",
                 f"{self.image_size}px" if self.image_size != default.image_size else "",
                 f"{self.in_channels} input channel{'s' * (self.in_channels != 1)}"
                 if self.in_channels != default.in_channels else ""]
        kind = "ImageNet" if self.imagenet else "CIFAR"
        return f"{kind} network ({', '.join([f'C={self.channels}', f'{self.cells} cells', *filter(None, extra)])})"


CIFAR = NetworkSize(channels=36, cells=20, classes=10, image_size=32)
IMAGENET = NetworkSize(channels=48, cells=14, classes=1000, image_size=224, imagenet=True)
