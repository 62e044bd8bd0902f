"""The SGNAS architecture generator (docs/methods/sgnas.md §4.3): a small fully convolutional network.

Input: a one-hot prior architecture as a 1-channel (L, W) image plus the normalised target
broadcast to `hc_dim` channels; output: an (L, W) logit map of the same size. All convs are
3x3, stride 1, padding 1, no bias except the last; ReLU activations.
"""
from __future__ import annotations

import torch
from torch import nn


def _convs(c_in: int, c_out: int, n: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, 1, 1, bias=False), nn.ReLU(inplace=True)]
    return layers


class ArchitectureGenerator(nn.Module):
    def __init__(self, hc_dim: int = 10, hidden: int = 32, body: int = 3):
        super().__init__()
        self.hc_dim = hc_dim
        self.constraint = nn.Sequential(*_convs(hc_dim, hidden, 3))
        self.prior = nn.Sequential(*_convs(1, hidden, 2))
        self.head = nn.Sequential(*_convs(hidden, hidden, 1))
        self.body = nn.Sequential(*_convs(hidden, hidden, body))
        self.tail = nn.Conv2d(hidden, 1, 3, 1, 1)

    def forward(self, prior: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """prior: (N, L, W) one-hot map; target: (N,) normalised targets -> (N, L, W) logits."""
        n, rows, cols = prior.shape
        t = target.view(n, 1, 1, 1).expand(n, self.hc_dim, rows, cols)
        f = self.prior(prior.unsqueeze(1)) + self.constraint(t)
        g = self.body(self.head(f)) + f
        return self.tail(g).squeeze(1)
