"""SGNAS stand-alone networks (`mobile`) built from a generated mobile-unified architecture.

The layout (widths, depths, strides) comes from `model.mobile`, which must be the search's
`space.mobile`; the architecture from a file `archsearch generate` wrote (RUN/generated/flops_T.json)
or a bare {"layers": ...} JSON. SE and h-swish are switchable as in the released models.
"""
from __future__ import annotations

import json
from pathlib import Path

from archsearch.errors import GenotypeError
from archsearch.models.base import MODELS, ModelFamily
from archsearch.spaces.mobile.arch import MobileArch, check_arch
from archsearch.spaces.mobile.layout import build_layout
from archsearch.spaces.mobile.network import MobileNetwork


@MODELS.register("mobile")
class Mobile(ModelFamily):
    def resolve(self, ref: str) -> MobileArch:
        path = Path(ref)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise GenotypeError(f"architecture file not found: {ref} (mobile models read the JSON of "
                                "`archsearch generate`)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise GenotypeError(f"{ref} is not valid JSON: {e}") from None
        except RecursionError:
            raise GenotypeError(f"{ref} is nested too deeply to be an architecture file") from None
        except OSError as e:  # a directory, unreadable, or genotype text too long for a file name
            raise GenotypeError(f"cannot read architecture file {ref[:80]}: {e.strerror or e}") from None
        return self.arch_from_dict(d.get("architecture", d) if isinstance(d, dict) else d)

    def arch_to_dict(self, arch: MobileArch) -> dict:
        return arch.to_dict()

    def arch_from_dict(self, d: dict) -> MobileArch:
        if not isinstance(d, dict):
            raise GenotypeError("a mobile-unified architecture is a JSON object with `layers`")
        return MobileArch.from_dict(d)

    def build(self, arch, cfg, in_channels, image_size, head):
        layout = build_layout(cfg.mobile, in_channels, image_size)
        check_arch(arch, layout, 1)
        return MobileNetwork(layout, arch, num_classes=0, se=cfg.se, act=cfg.act, bn_momentum=cfg.bn_momentum,
                             head=head)
