"""What a run directory says about its network input, without opening the dataset.

`plot`, `generate` and imports rebuild a run's space from its config and checkpoint alone; spaces
whose layout depends on the input (the mobile space) are bound to it here, as the search binds them.
"""
from __future__ import annotations

from archsearch.config import SearchConfig
from archsearch.data import DatasetInfo, dataset_info, static_dataset_info
from archsearch.errors import CheckpointError
from archsearch.objectives import create_objective
from archsearch.spaces import create_space


def run_info(cfg: SearchConfig, ckpt: dict) -> DatasetInfo:
    """The run's input shape and classes, without the data: recorded in its checkpoint (imports and
    newer searches), else the dataset registry's static description (fashion-mnist, cifar, imagenet,
    ...); only an older image-folder run still has to count its class folders."""
    if "info" in ckpt:
        try:
            return DatasetInfo(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["info"].items()})
        except (AttributeError, TypeError) as e:
            raise CheckpointError(f"the checkpoint's input description is damaged: {e}") from None
    return static_dataset_info(cfg.data) or dataset_info(cfg.data)


def bind_space(cfg: SearchConfig, info: DatasetInfo):
    """The run's space bound to its network input, as the search engine binds it."""
    objective = create_objective(cfg.objective, info)
    space = create_space(cfg.space)
    space.bind(objective.input_channels(info.in_channels), objective.input_size(info.image_size))
    return space
