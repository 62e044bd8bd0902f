"""Checks of a dataset against the objective that will read it."""
from __future__ import annotations

from archsearch.data.base import DatasetInfo
from archsearch.errors import DataError

CLASSIFYING = ("supervised",)  # objectives whose targets are the dataset's class labels


def check_labels(objective: str, info: DatasetInfo) -> None:
    """Classification over fewer than two classes scores top-1 = 1.0 whatever the network learns."""
    if objective in CLASSIFYING and info.num_classes < 2:
        where = " (one class per train/ subfolder)" if info.name in ("imagefolder", "imagenet") else ""
        raise DataError(f"{info.name} has {info.num_classes} class{'es' if info.num_classes != 1 else ''}{where}; "
                        f"{objective} classification needs at least 2")
