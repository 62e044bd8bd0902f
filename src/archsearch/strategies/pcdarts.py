"""PC-DARTS (Xu et al., 2020): DARTS on a partial-channel supernet with edge normalisation.

Partial channels are a property of the supernet (space.partial_channels = K); this strategy adds
the edge-normalisation betas: per node, a softmax over its incoming edges scales each edge's
output, and the derived genotype ranks edges by softmax(alpha) * softmax_node(beta).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from archsearch.config import opt
from archsearch.strategies.base import STRATEGIES
from archsearch.strategies.darts import Darts, DartsConfig


@dataclass
class PcdartsConfig(DartsConfig):
    name: str = "pcdarts"
    edge_norm: bool = opt(True, "edge-normalisation betas (per node softmax over the incoming edges)")


def node_softmax(beta: torch.Tensor, groups: list[slice]) -> torch.Tensor:
    return torch.cat([torch.softmax(beta[g], dim=0) for g in groups])


@STRATEGIES.register("pcdarts", config=PcdartsConfig)
class PCDarts(Darts):
    name = "pcdarts"

    def __init__(self, space, cfg):
        super().__init__(space, cfg)
        if cfg.edge_norm:
            shapes = space.arch_shapes()
            self.betas = nn.ParameterDict(
                {k: nn.Parameter(1e-3 * torch.randn(shapes[k][0])) for k in shapes}
            )
            self.optimizer = self.make_arch_optimizer()  # again, now over alphas and betas

    def weights(self):
        w = super().weights()
        if self.cfg.edge_norm:
            groups = self.space.edge_groups()
            for k, b in self.betas.items():
                w[k + "_edges"] = node_softmax(b, groups)
        return w
