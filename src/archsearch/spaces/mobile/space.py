"""`mobile-unified`: the SGNAS search space as a SearchSpace.

Architecture weights are one tensor "arch" of shape (L, S, K+1): per layer and sub-block, the
weights of the kernels then skip. The layout depends on the input, so the space binds to it
when the supernet is built (or through `bind`, e.g. when generating from a finished run).
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from archsearch.config import Choice, SpaceConfig, opt
from archsearch.errors import ConfigError, GenotypeError
from archsearch.spaces.base import SPACES, SearchSpace, cost_record
from archsearch.spaces.mobile.arch import (
    SKIP,
    MobileArch,
    block_strings,
    check_arch,
    sample_arch,
)
from archsearch.spaces.mobile.cost import FlopsTable, network_cost
from archsearch.spaces.mobile.decode import resolve_decoding
from archsearch.spaces.mobile.fair import fair_paths
from archsearch.spaces.mobile.layout import Layout, MobileLayoutConfig, build_layout, layout_record
from archsearch.spaces.mobile.supernet import UnifiedSupernet


class Decoding(Choice):
    auto = "auto"  # forced when forced_sampling, else released
    forced = "forced"  # the forced-sampling canonical form (kernels sorted, skips last)
    released = "released"  # eric8607242/SGNAS: sub-block order kept, only sub-block 0 never skips


@dataclass
class MobileSpaceConfig(SpaceConfig, MobileLayoutConfig):
    """The SGNAS unified MobileNet space (docs/methods/sgnas.md §2)."""

    name: str = "mobile-unified"
    forced_sampling: bool = opt(True, "one canonical arrangement per multiset (kernels sorted, skips last)")
    decoding: Decoding = opt(Decoding.auto, "generator argmax -> architecture")
    prune_threshold: float = opt(0.01, "soft weights at or below it are neither computed nor counted", low=0.0)


@SPACES.register("mobile-unified", config=MobileSpaceConfig)
class MobileUnifiedSpace(SearchSpace):
    name = "mobile-unified"

    def __init__(self, cfg):
        self.cfg = cfg
        self.layout: Layout | None = None
        build_layout(self.cfg, 3, 224)  # refuse a bad config before anything runs
        self.decoding = resolve_decoding(str(self.cfg.decoding), self.cfg.forced_sampling)

    # -- layout -------------------------------------------------------------------------------
    def bind(self, in_channels: int, image_size: int) -> Layout:
        self.layout = build_layout(self.cfg, in_channels, image_size)
        return self.layout

    def _bound(self) -> Layout:
        if self.layout is None:
            raise ConfigError("the mobile-unified space has no input size yet (build its supernet or bind it)")
        return self.layout

    @property
    def min_expansion(self) -> int:
        return self.cfg.min_expansion

    def skip_allowed(self) -> list[bool]:
        """Per sub-block, whether a decoded architecture may skip it (decode.py): never below
        min_expansion under `forced` (skips are last), never sub-block 0 under `released`."""
        return self.decoding.skip_allowed(self._bound().sub_blocks, self.cfg.min_expansion)

    def flops_table(self) -> FlopsTable:
        return FlopsTable(self._bound(), self.cfg.prune_threshold)

    # -- SearchSpace --------------------------------------------------------------------------
    def arch_shapes(self):
        lay = self._bound()
        return {"arch": (len(lay.layers), lay.sub_blocks, lay.num_ops)}

    def edge_groups(self):
        return [slice(i, i + 1) for i in range(len(self._bound().layers))]

    def build_supernet(self, in_channels: int, image_size: int, head: Callable[[int], nn.Module]) -> nn.Module:
        return UnifiedSupernet(self.bind(in_channels, image_size), head, self.cfg.prune_threshold)

    def derive(self, weights: dict[str, torch.Tensor]) -> MobileArch:
        """Argmax per sub-block (skip excluded where it is not allowed), in the decoding's form."""
        lay = self._bound()
        w = weights["arch"].detach().clone()
        for b, ok in enumerate(self.skip_allowed()):
            if not ok:
                w[:, b, lay.skip] = -float("inf")
        ops = list(lay.kernels) + [SKIP]
        arch = MobileArch(tuple(tuple(ops[i] for i in row) for row in w.argmax(dim=-1).tolist()))
        return self.decoding.finish(arch)

    def sample(self, rng: random.Random) -> MobileArch:
        return sample_arch(self._bound(), self.cfg.min_expansion, self.cfg.forced_sampling, rng)

    def fair_paths(self, rng: random.Random, passes: int) -> list[MobileArch]:
        return fair_paths(self._bound(), self.cfg.min_expansion, self.cfg.forced_sampling, passes, rng)

    def one_hot(self, arch: MobileArch) -> dict[str, torch.Tensor]:
        lay = self._bound()
        check_arch(arch, lay, 1)
        index = {k: i for i, k in enumerate(lay.kernels)} | {SKIP: lay.skip}
        w = torch.zeros(len(lay.layers), lay.sub_blocks, lay.num_ops)
        for i, layer in enumerate(arch.layers):
            for b, op in enumerate(layer):
                w[i, b, index[op]] = 1.0
        return {"arch": w}

    def arch_to_dict(self, arch: MobileArch) -> dict:
        """The architecture with the layout it was searched in, so that retraining inherits it."""
        recorded = MobileArch(arch.layers, layout_record(self.cfg))
        return {"space": self.name, **recorded.to_dict(), "blocks": block_strings(arch, self._bound())}

    def arch_from_dict(self, d: dict) -> MobileArch:
        if d.get("space", self.name) != self.name:
            raise GenotypeError(f"architecture is for space {d.get('space')!r}, not {self.name}")
        arch = MobileArch.from_dict(d)
        check_arch(arch, self._bound(), 1)
        return arch


    def plot_architecture(self, arch: MobileArch, title: str):
        from archsearch.viz.sgnas import draw_architectures

        lay = self._bound()
        return draw_architectures([(title, arch)], lay.kernels, lay.sub_blocks)
    def cost(self, arch: MobileArch, info) -> dict:
        """Conv FLOPs (what SGNAS reports) and params of the stand-alone network, without and with
        SE (the released models); h-swish changes neither."""
        lay = self._bound()
        plain = network_cost(lay, arch, info.num_classes, se=False)
        se = network_cost(lay, arch, info.num_classes, se=True).as_dict()
        return cost_record("stand-alone network", plain.params, plain.conv_macs + plain.fc_macs,
                           flops_M=plain.as_dict()["flops_M"], se_params_M=se["params_M"], se_flops_M=se["flops_M"],
                           lut_flops_M=self.flops_table().discrete(arch))

    def describe(self, arch: MobileArch) -> dict:
        e = arch.expansions
        return {"network": {"ops": arch.short(), "mean_expansion": sum(e) / len(e),
                            "kernel_counts": {str(k): sum(ks.count(k) for ks in arch.kernels)
                                              for k in self._bound().kernels}}}
