"""SGNAS stand-alone networks (`mobile`) built from a generated mobile-unified architecture.

The architecture comes from a file `archsearch generate` wrote (RUN/generated/flops_T.json) or a
bare {"layers": ...} JSON. The layout (widths, depths, strides) is the one the architecture records
(its search's space) unless `model.from_search=false`, in which case the `model` layout fields
give it. SE and h-swish are switchable as in the released models.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from archsearch.config import Choice, ModelConfig, opt
from archsearch.data.base import DatasetInfo
from archsearch.errors import ConfigError, GenotypeError
from archsearch.models.base import MODELS, ModelFamily
from archsearch.spaces.mobile.arch import MobileArch, check_arch
from archsearch.spaces.mobile.layout import MobileLayoutConfig, build_layout
from archsearch.spaces.mobile.network import MobileNetwork
from archsearch.spaces.mobile.space import MobileSpaceConfig, MobileUnifiedSpace


class Act(Choice):
    relu6 = "relu6"
    hswish = "hswish"


@dataclass
class MobileModelConfig(ModelConfig, MobileLayoutConfig):
    """The stand-alone network of a mobile-unified architecture (see spaces/mobile/network.py)."""

    name: str = "mobile"
    from_search: bool = opt(True, "use the layout the architecture records (its search's space); "
                                  "false, or none recorded: the layout fields here")
    se: bool = opt(False, "squeeze-and-excitation in every block (the released models)")
    act: Act = opt(Act.relu6, "activation (the released ImageNet models: hswish)")
    bn_momentum: float = opt(0.1, "PyTorch convention (the released ImageNet models: 0.001)", above=0.0, high=1.0)


@MODELS.register("mobile", config=MobileModelConfig)
class Mobile(ModelFamily):
    def resolve(self, ref: str) -> MobileArch:
        """A generated-architecture JSON, or an SGNAS search run directory: its genotype.json, the
        architecture generated for the middle of the run's FLOPs range (`archsearch generate` for others)."""
        path = Path(ref)
        try:
            if path.is_dir():
                path = path / "genotype.json"
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise GenotypeError(f"architecture file not found: {path} (mobile models read the JSON of "
                                "`archsearch generate` or an SGNAS run's genotype.json)") from None
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

    def show(self, arch: MobileArch) -> list[str]:
        """The layers (expansion:[kernels]) and the space's summary of them."""
        facts = _space(arch, 3, 224).describe(arch)["network"]
        kernels = ", ".join(f"{n} x k{k}" for k, n in facts["kernel_counts"].items())
        return [f"layers  {facts['ops']}", f"mean expansion {facts['mean_expansion']:.2f}, kernels {kernels}"]

    def price(self, arch: MobileArch, sizes: dict[str, int], imagenet: bool) -> list[tuple[str, int, int]]:
        """The stand-alone network (no SE) on its layout, priced by the space: ImageNet input
        (224 px, 1000 classes) for the imagenet layout or with `imagenet`, else CIFAR's (32 px, 10)."""
        fixed = sorted(set(sizes) - {"classes", "image_size", "in_channels"})
        if fixed:
            raise ConfigError(f"--{fixed[0].replace('_', '-')} does not apply to a mobile architecture: its widths "
                              "and depths come from the layout it records; give --classes, --image-size, --in-channels")
        layout = str((arch.layout or {}).get("layout", MobileLayoutConfig.layout))
        big = imagenet or layout == "imagenet"
        image_size = sizes.get("image_size", 224 if big else 32)
        in_channels = sizes.get("in_channels", 3)
        classes = sizes.get("classes", 1000 if big else 10)
        for name, v in (("classes", classes), ("image_size", image_size), ("in_channels", in_channels)):
            if v < 1:
                raise ConfigError(f"network size: {name} must be at least 1, got {v}")
        info = DatasetInfo("priced input", in_channels, image_size, classes, (0.0,) * in_channels, (1.0,) * in_channels)
        cost = _space(arch, in_channels, image_size).cost(arch, info)
        extra = f", {in_channels} input channel{'s' * (in_channels != 1)}" if in_channels != 3 else ""
        return [(f"stand-alone network ({layout} layout, {image_size}px, {classes} classes{extra})",
                 round(cost["params_M"] * 1e6), round(cost["mult_adds_M"] * 1e6))]

    def write(self, arch: MobileArch, fmt: str) -> str:
        if fmt != "json":
            raise ConfigError(f"a mobile architecture is written as json only, not {fmt!r}")
        return json.dumps(self.arch_to_dict(arch), indent=2) + "\n"

    def build(self, arch, cfg, in_channels, image_size, head):
        recorded = arch.layout if cfg.from_search and arch.layout is not None else None
        layout = build_layout(MobileLayoutConfig(**recorded) if recorded else cfg, in_channels, image_size)
        check_arch(arch, layout, 1)
        return MobileNetwork(layout, arch, num_classes=0, se=cfg.se, act=str(cfg.act), bn_momentum=cfg.bn_momentum,
                             head=head)


def _space(arch: MobileArch, in_channels: int, image_size: int) -> MobileUnifiedSpace:
    """The space the architecture was searched in (its recorded layout, else the default one), bound
    to an input and checked to hold the architecture."""
    try:
        space = MobileUnifiedSpace(MobileSpaceConfig(**(arch.layout or {})))
    except TypeError as e:
        raise GenotypeError(f"the architecture's recorded layout is not a mobile layout: {e}") from None
    check_arch(arch, space.bind(in_channels, image_size), 1)
    return space
