"""The evaluation-model registry.

A model family knows which architecture format it reads (a DARTS genotype, a mobile block
list, ...) and builds the network for a dataset; the task head comes from the objective, so the
same network trains under supervision or a pretext task.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

from torch import nn

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


MODELS: Registry[ModelFamily] = Registry("model")


def create_family(name: str) -> ModelFamily:
    return MODELS.create(name)


def list_models() -> list[str]:
    return MODELS.names()
