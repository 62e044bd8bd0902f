"""The search-space interface and registry.

A space builds a supernet for an input shape, says what shape its architecture weights take,
turns weights into a discrete architecture, samples architectures, and prices them.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from archsearch.registry import Registry

SPACES: Registry["SearchSpace"] = Registry("search space")


class SearchSpace(ABC):
    name: str

    @abstractmethod
    def arch_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the architecture weight tensors the supernet consumes, by key."""

    @abstractmethod
    def edge_groups(self) -> list[slice]:
        """Rows of the weight matrices that compete with each other (one group per node)."""

    @abstractmethod
    def build_supernet(self, in_channels: int, image_size: int, head: Callable[[int], nn.Module]) -> nn.Module:
        """A module called as supernet(x, weights); `head` maps feature channels to the task head."""

    @abstractmethod
    def derive(self, weights: dict[str, torch.Tensor]) -> Any:
        """The discrete architecture that the (soft) weights point to."""

    @abstractmethod
    def sample(self, rng: random.Random) -> Any:
        """A uniformly random discrete architecture."""

    @abstractmethod
    def one_hot(self, arch: Any) -> dict[str, torch.Tensor]:
        """Weights that make the supernet compute exactly `arch`."""

    @abstractmethod
    def arch_to_dict(self, arch: Any) -> dict:
        """JSON form of an architecture (what genotype.json holds)."""

    @abstractmethod
    def cost(self, arch: Any, info) -> dict:
        """Params and mult-adds of the architecture's evaluation network for a dataset: a
        `cost_record`, the same keys for every space."""

    @abstractmethod
    def describe(self, arch: Any) -> dict:
        """Human-facing summary of an architecture (e.g. op counts)."""

    @abstractmethod
    def arch_from_dict(self, d: dict) -> Any:
        """The architecture `arch_to_dict` wrote (genotype.json), checked against the space."""

    @abstractmethod
    def plot_architecture(self, arch: Any, title: str):
        """A matplotlib figure of one architecture (the derived cells, the layer diagram)."""

    def bind(self, in_channels: int, image_size: int) -> None:  # noqa: B027 (most spaces need no input)
        """Fix the network input, for spaces whose layout depends on it; `build_supernet` does it too."""

    def weight_panels(self, kind: str) -> Optional[tuple[list[Sequence[str]], int]]:
        """(candidate names per edge, nodes) to draw the anytime weights of `kind` as edge panels;
        None where the weights are not edges x ops."""
        return None


def cost_record(network: str, params: int, mult_adds: int, **extras) -> dict:
    """The one cost record: which network was priced, its parameters and mult-adds (conv and linear,
    one image), and space-specific numbers under `extras`."""
    return {"network": network, "params_M": params / 1e6, "mult_adds_M": mult_adds / 1e6, "extras": extras}


def create_space(cfg) -> SearchSpace:
    return SPACES.create(cfg.name, cfg)


def list_spaces() -> list[str]:
    return SPACES.names()
