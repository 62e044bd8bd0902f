"""Dataset descriptions, the dataset registry and the helpers every dataset family shares."""
from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

from torch.utils.data import Dataset

from archsearch.config import DataConfig
from archsearch.errors import DataError
from archsearch.registry import Registry

Transform = Callable[[Any], Any]


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about its input, before any data is loaded."""

    name: str
    in_channels: int
    image_size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


class DataSource(ABC):
    """One dataset family: where its files live, what its images look like, how to load them.

    `style` picks the augmentation recipe: "small" (pad-crop and flip, CIFAR style) or
    "large" (random-resized-crop and colour jitter, ImageNet style).
    """

    style: ClassVar[str] = "small"

    def __init__(self, cfg: DataConfig):
        self.cfg = cfg

    @abstractmethod
    def native_info(self) -> DatasetInfo:
        """The dataset's own description, ignoring cfg.image_size."""

    @abstractmethod
    def load(self, train: bool, transform: Optional[Transform]) -> Dataset:
        """The training split, or the evaluation split when `train` is false."""

    def transform(self, augment: bool) -> Transform:
        """The pipeline `load` applies; augment false gives the evaluation view. Image-label
        sources use the `style` recipes; segmentation sources return a joint image+mask one."""
        from archsearch.data.transforms import build_transform  # transforms imports this module

        return build_transform(self.style, self.info(), self.native_info().image_size, self.cfg, augment)

    def info(self) -> DatasetInfo:
        return self._sized(self.native_info())

    def static_info(self) -> Optional[DatasetInfo]:
        """info() without opening a file, or None where only the files tell (an image folder's
        classes); rebuilding from a run directory (generate) needs no data on disk."""
        return self.info()

    def _sized(self, info: DatasetInfo) -> DatasetInfo:
        if self.cfg.image_size:
            info = dataclasses.replace(info, image_size=self.cfg.image_size)
        return info


DATASETS: Registry[DataSource] = Registry("dataset")


def env_root() -> Optional[Path]:
    value = os.environ.get("ARCHSEARCH_DATA")
    return Path(value).expanduser() if value else None


def given_root(cfg: DataConfig) -> Optional[Path]:
    """data.root as given. When set it is the only place looked in (no silent fallback to another
    copy), so it must exist, unless data.download is to create it."""
    if not cfg.root:
        return None
    root = Path(cfg.root).expanduser()
    if root.exists() and not root.is_dir():
        raise DataError(f"{cfg.name}: data.root {root} is a file, not a folder")
    if not root.exists() and not cfg.download:
        raise DataError(f"{cfg.name}: data.root {root} does not exist")
    return root


def user_roots(cfg: DataConfig) -> list[Path]:
    """The folders the user pointed at: data.root alone when set, else $ARCHSEARCH_DATA."""
    root = given_root(cfg)
    if root is not None:
        return [root]
    env = env_root()
    return [env] if env is not None else []


def cache_dir() -> Path:
    """Where archsearch keeps files it derives or downloads itself (XDG convention)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "archsearch"


def download_root(cfg: DataConfig) -> Path:
    """Downloads go where the user asked, else into the cache so they are found next time."""
    roots = user_roots(cfg)
    return roots[0] if roots else cache_dir() / "datasets"


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split())
