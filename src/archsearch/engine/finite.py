"""Weights and statistics must be finite before a checkpoint is written.

The step's loss check sees NaN losses, not a batch-norm running variance that overflowed to inf
while the loss still looked fine; without this check such a state would replace the last good
checkpoint, and every resume would continue from it.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Optional

import torch
from torch import nn

from archsearch.errors import DivergenceError


def _tensors(module: nn.Module, buffers: bool) -> Iterator[tuple[str, torch.Tensor]]:
    yield from module.named_parameters()
    if buffers:
        yield from module.named_buffers()


def first_nonfinite(modules: Iterable[Optional[nn.Module]], parameters_only: Iterable[Optional[nn.Module]] = ()
                    ) -> Optional[str]:
    """Name of the first parameter (or floating buffer of `modules`) holding NaN or inf, else None.
    `parameters_only` spares buffers that may legitimately hold inf (e.g. a best score not yet set)."""
    groups = [(m, True) for m in modules if m is not None] + [(m, False) for m in parameters_only if m is not None]
    for module, buffers in groups:
        for name, t in _tensors(module, buffers):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                kind = "nan" if bool(torch.isnan(t).any()) else "inf"
                return f"{name} ({kind})"
    return None


def check_finite(where: str, modules: Iterable[Optional[nn.Module]],
                 parameters_only: Iterable[Optional[nn.Module]] = (), kept: str = "") -> None:
    """Raise a one-line DivergenceError naming the first non-finite tensor; `kept` says what survives."""
    bad = first_nonfinite(modules, parameters_only)
    if bad is not None:
        raise DivergenceError(f"{where}: the weights diverged ({bad} is not finite); lower optim.lr or check "
                              f"the data; {kept or 'nothing was written'}")
