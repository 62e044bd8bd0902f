"""Parameters and mult-adds measured on a built network (any family).

Mult-adds count convolutions and linear layers, the convention of the analytic counts in
spaces/*/cost.py; auxiliary heads (modules named `aux_head`) are excluded as in the papers.
"""
from __future__ import annotations

import torch
from torch import nn


def _aux_params(model: nn.Module) -> set[int]:
    return {id(p) for name, m in model.named_modules() if name.split(".")[-1] == "aux_head"
            for p in m.parameters()}


def count_params(model: nn.Module) -> int:
    aux = _aux_params(model)
    return sum(p.numel() for p in model.parameters() if id(p) not in aux)


@torch.no_grad()
def count_macs(model: nn.Module, in_channels: int, image_size: int | tuple[int, int], batch: int = 1) -> int:
    """Mult-adds of one image (square, or (height, width)) through the network in eval mode (the
    auxiliary head does not run). A model on the meta device is counted without computing.

    batch > 1 counts `batch` inputs together: one sample of objectives that feed several inputs
    per target (a jigsaw puzzle's tiles).
    """
    total = 0

    def hook(m, inputs, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            total += out.numel() * (m.in_channels // m.groups) * kh * kw
        else:
            total += inputs[0].numel() // m.in_features * m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters())
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        model(torch.zeros(batch, in_channels, h, w, device=p.device, dtype=p.dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total
