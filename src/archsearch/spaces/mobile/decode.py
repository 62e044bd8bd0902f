"""Decoding rules: per-sub-block scores (generator logits, architecture weights) -> an architecture.

Every rule takes the argmax per sub-block over the candidates that sub-block may take; rules
differ in which sub-blocks may be skip and in the form of the result:

* `released`: the authors' rule (eric8607242/SGNAS, utils/lookup_table_builder.py,
  `get_validation_arch_param` + `decode_arch_param`). All 19 layers are `static_layers`, so only
  sub-block 0 may not be skip; skipped sub-blocks are dropped and the kernels keep their sub-block
  order, which is the order of the stand-alone block's depthwise groups (utils/model.py).
* `forced`: the canonical form of forced sampling (the paper's supplementary D, architecture
  redundancy). The first `min_expansion` sub-blocks may not be skip, then the kernels are sorted
  and the skips go last: one arrangement per multiset.

`auto` picks `forced` when the space trains with forced sampling, else `released`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from archsearch.errors import ConfigError
from archsearch.registry import Registry
from archsearch.spaces.mobile.arch import MobileArch


class Decoding(ABC):
    """Which sub-blocks may be skip, and the form a decoded architecture is given."""

    name = ""

    @abstractmethod
    def skip_allowed(self, sub_blocks: int, min_expansion: int) -> list[bool]: ...

    @abstractmethod
    def finish(self, arch: MobileArch) -> MobileArch: ...


DECODINGS: Registry[Decoding] = Registry("decoding")


@DECODINGS.register("forced")
class ForcedDecoding(Decoding):
    name = "forced"

    def skip_allowed(self, sub_blocks: int, min_expansion: int) -> list[bool]:
        return [b >= min_expansion for b in range(sub_blocks)]

    def finish(self, arch: MobileArch) -> MobileArch:
        return arch.canonical()


@DECODINGS.register("released")
class ReleasedDecoding(Decoding):
    name = "released"

    def skip_allowed(self, sub_blocks: int, min_expansion: int) -> list[bool]:
        return [b >= 1 for b in range(sub_blocks)]

    def finish(self, arch: MobileArch) -> MobileArch:
        return arch


def resolve_decoding(name: str, forced_sampling: bool) -> Decoding:
    if name == "auto":
        name = "forced" if forced_sampling else "released"
    if name not in DECODINGS:
        raise ConfigError(f"space.decoding must be auto or one of {DECODINGS.names()}, got {name!r}")
    return DECODINGS.create(name)
