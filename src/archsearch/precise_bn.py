"""Precise batch-norm statistics (pycls's `compute_precise_bn_stats`, used by UnNAS's
sample-based training runs, docs/methods/unnas.md §3.2).

Running averages with momentum lag behind the weights of the last steps; after an epoch the
statistics are recomputed with the weights frozen: every BN takes each batch's own statistics
(momentum 1) and the results are averaged over batches, mean and E[x^2] separately, so
var = E[x^2] - mean^2 pools the batches' variances and the spread of their means.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from archsearch.collectives import average_


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, inputs: Iterable[torch.Tensor]) -> int:
    """Replace every tracking BN's running statistics by their average over the batches of
    `inputs` (model in training mode, no gradients; under torchrun also averaged over ranks).
    Returns the number of batches used; with none, nothing changes."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return 0
    means = [torch.zeros_like(bn.running_mean) for bn in bns]
    squares = [torch.zeros_like(bn.running_var) for bn in bns]
    momenta = [bn.momentum for bn in bns]
    training = model.training
    model.train()
    for bn in bns:
        bn.momentum = 1.0  # running stats := this batch's stats
    batches = 0
    try:
        for x in inputs:
            model(x)
            batches += 1
            for bn, m, s in zip(bns, means, squares):
                m += bn.running_mean
                s += bn.running_var + bn.running_mean**2
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        model.train(training)
    if batches == 0:  # nothing ran, so nothing changed
        return 0
    average_(means + squares)
    for bn, m, s in zip(bns, means, squares):
        m /= batches
        bn.running_mean.copy_(m)
        bn.running_var.copy_(s / batches - m**2)
    return batches
