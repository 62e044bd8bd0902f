"""The evaluation-model registry.

A model family knows which architecture format it reads (a DARTS genotype, a mobile block
list, ...) and builds the network for a dataset; the task head comes from the objective, so the
same network trains under supervision or a pretext task.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

from torch import nn

from archsearch.errors import GenotypeError
from archsearch.registry import Registry

Head = Callable[[int], nn.Module]


class ModelFamily(ABC):
    @abstractmethod
    def resolve(self, ref: str) -> Any:
        """The architecture a reference names (published name, JSON file, run directory)."""

    @abstractmethod
    def build(self, arch: Any, cfg: Any, in_channels: int, image_size: int, head: Head) -> nn.Module:
        """The network; in training mode with an auxiliary head it returns (logits, aux_logits)."""

    @abstractmethod
    def arch_to_dict(self, arch: Any) -> dict:
        """JSON form of the architecture, stored with the weights so a model file is self-contained."""

    @abstractmethod
    def arch_from_dict(self, d: dict) -> Any: ...

    # -- `archsearch genotype`: show, price and convert an architecture of any family ------------
    @abstractmethod
    def show(self, arch: Any) -> list[str]:
        """Lines that show the architecture to a person."""

    @abstractmethod
    def price(self, arch: Any, sizes: dict[str, int], imagenet: bool) -> list[tuple[str, int, int]]:
        """(network, params, mult-adds) of the evaluation networks the architecture makes: the
        family's usual ones, or one network of the given `sizes` (channels, cells, classes,
        image_size, in_channels) and `imagenet` input; a size the family has no use for, or one its
        network cannot take, is a ConfigError."""

    @abstractmethod
    def write(self, arch: Any, fmt: str) -> str:
        """The architecture as text in format `fmt` (a name the family does not write is a ConfigError)."""


MODELS: Registry[ModelFamily] = Registry("model")


def create_family(name: str) -> ModelFamily:
    return MODELS.create(name)


def resolve_architecture(ref: str) -> tuple[ModelFamily, Any]:
    """The first model family (in name order) that reads `ref`, with the architecture it reads;
    when none does, the error of the first family that recognised the format but refused the content
    (an error with `recognised = True`), else the first family's (the most detailed reader goes first: darts-*)."""
    first = None
    for name in MODELS.names():
        family = create_family(name)
        try:
            return family, family.resolve(ref)
        except GenotypeError as e:
            if first is None or (getattr(e, "recognised", False) and not getattr(first, "recognised", False)):
                first = e
    raise first


def list_models() -> list[str]:
    return MODELS.names()
