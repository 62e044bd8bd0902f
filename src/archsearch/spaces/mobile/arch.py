"""Discrete architectures of the unified space: one candidate per sub-block (docs/methods/sgnas.md §2.3, §2.4).

A layer is a tuple of S entries, each a kernel size or SKIP (0). Its expansion rate is the
number of non-skip entries, its depthwise stage the list of those kernels in sub-block order.
Forced sampling keeps one arrangement per multiset: kernels ascending, skips last.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Optional

from archsearch.errors import GenotypeError

SKIP = 0


@dataclass(frozen=True)
class MobileArch:
    layers: tuple[tuple[int, ...], ...]
    # the macro-layout it was searched in (MobileLayoutConfig fields), recorded so that a retraining
    # builds the same network without restating it; not part of the architecture's identity
    layout: Optional[dict] = field(default=None, compare=False, hash=False, repr=False)

    @property
    def expansions(self) -> list[int]:
        return [sum(op != SKIP for op in layer) for layer in self.layers]

    @property
    def kernels(self) -> list[list[int]]:
        """Per layer, the kernels of the active sub-blocks in sub-block order."""
        return [[op for op in layer if op != SKIP] for layer in self.layers]

    def canonical(self) -> MobileArch:
        """The forced-sampling representative: same multisets, kernels ascending, skips last."""
        return MobileArch(tuple(
            tuple(sorted(op for op in layer if op != SKIP)) + (SKIP,) * sum(op == SKIP for op in layer)
            for layer in self.layers
        ))

    def short(self) -> str:
        """e:[kernels] per layer, the notation of docs/methods/sgnas.md §6.3."""
        return " ".join(f"{e}:[{','.join(map(str, k))}]" for e, k in zip(self.expansions, self.kernels))

    def to_dict(self) -> dict:
        d = {
            "layers": [[op if op != SKIP else "skip" for op in layer] for layer in self.layers],
            "expansions": self.expansions,
            "kernels": self.kernels,
        }
        return d if self.layout is None else {**d, "layout": dict(self.layout)}

    @classmethod
    def from_dict(cls, d: dict) -> MobileArch:
        try:
            layers = tuple(tuple(SKIP if op == "skip" else int(op) for op in layer) for layer in d["layers"])
        except (KeyError, TypeError, ValueError) as e:
            raise GenotypeError(f"not a mobile-unified architecture: {type(e).__name__}: {e}") from None
        layout = d.get("layout")
        if layout is not None and not isinstance(layout, dict):
            raise GenotypeError("not a mobile-unified architecture: `layout` must be an object")
        return cls(layers, layout)


def check_arch(arch: MobileArch, layout, min_expansion: int) -> None:
    """Refuse an architecture that does not fit the layout (layer count, width, kernels, depth)."""
    if len(arch.layers) != len(layout.layers):
        raise GenotypeError(f"architecture has {len(arch.layers)} layers, the space {len(layout.layers)}")
    allowed = set(layout.kernels) | {SKIP}
    for i, layer in enumerate(arch.layers):
        if len(layer) != layout.sub_blocks:
            raise GenotypeError(f"layer {i} has {len(layer)} sub-blocks, the space {layout.sub_blocks}")
        bad = [op for op in layer if op not in allowed]
        if bad:
            raise GenotypeError(f"layer {i}: kernel {bad[0]} is not one of {list(layout.kernels)} or skip")
        if sum(op != SKIP for op in layer) < min_expansion:
            raise GenotypeError(f"layer {i} has fewer than {min_expansion} active sub-blocks")


def sample_arch(layout, min_expansion: int, forced: bool, rng: random.Random) -> MobileArch:
    """Expansion uniform in [min, S] per layer, kernels uniform; canonical under FS, else the
    active sub-blocks are a random subset that keeps sub-block 0 (the static-layer rule)."""
    s = layout.sub_blocks
    layers = []
    for _ in layout.layers:
        e = rng.randint(min_expansion, s)
        kernels = [rng.choice(layout.kernels) for _ in range(e)]
        if forced:
            layer = tuple(sorted(kernels)) + (SKIP,) * (s - e)
        else:
            where = [0] + rng.sample(range(1, s), e - 1)
            layer = [SKIP] * s
            for b, k in zip(where, kernels):
                layer[b] = k
            layer = tuple(layer)
        layers.append(layer)
    return MobileArch(tuple(layers))


SE_RATIO = 0.25  # SGNAS's SE squeezes the expanded (depthwise) channels to a quarter


def block_string(c_out: int, kernels: list[int], stride: int, se: bool, skip: bool = True) -> str:
    """One timm block string: `ir` with mixed kernels k3.5.7 (one per group, in order), `ds` at
    expansion 1. timm's EfficientNet divides a block's se ratio by its expansion (its builder's
    se_from_exp=False: se relative to the block input), so the ratio written is SE_RATIO x e."""
    e = len(kernels)
    kind = f"ir_r1_k{'.'.join(map(str, kernels))}_s{stride}_e{e}" if e > 1 else f"ds_r1_k{kernels[0]}_s{stride}"
    return f"{kind}_c{c_out}" + (f"_se{SE_RATIO * e:g}" if se else "") + ("" if skip else "_noskip")


def block_strings(arch: MobileArch, layout, se: bool = False) -> list[str]:
    """timm block strings, one per searchable layer (see block_string for the SE ratio)."""
    return [block_string(spec.c_out, ks, spec.stride, se) for spec, ks in zip(layout.layers, arch.kernels)]
