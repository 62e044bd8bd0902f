"""`archsearch genotype REF`: show an architecture of any model family and price its evaluation
networks, or convert it: a DARTS genotype between the archsearch JSON, the originals' Genotype(...)
repr and pycls/UnNAS YAML; a mobile (SGNAS) architecture, from a run or `archsearch generate`, as JSON; a
NAS-Bench-101 cell between archsearch JSON, the benchmark's spec JSON and UnNAS's nas_bench YAML.
The first family that reads REF (models/) shows, prices and writes it."""
from __future__ import annotations

import sys
from pathlib import Path

from archsearch.commands import COMMANDS
from archsearch.errors import ConfigError


@COMMANDS.register("genotype")
def register(sub) -> None:
    g = sub.add_parser("genotype", help="show an architecture and the cost of its evaluation networks, or convert it")
    g.add_argument("ref", help="published name, run directory, or a genotype file or text: archsearch JSON, a DARTS "
                               "Genotype(...) repr, or pycls/UnNAS YAML (NAS.CUSTOM_GENOTYPE or the bare 4-item list); "
                               "or a mobile architecture: an SGNAS run or a file of `archsearch generate`; or a "
                               "NAS-Bench-101 cell: {matrix, ops} or {module_adjacency, module_operations} JSON, or "
                               "UnNAS nas_bench YAML")
    g.add_argument("--to", metavar="FORMAT", help="print the genotype in this format instead: json, darts or pycls "
                                                  "(a NAS-Bench-101 cell: json, nasbench or pycls)")
    g.add_argument("--output", metavar="FILE",
                   help="write the converted genotype to FILE (atomically); without --to the suffix picks the format")
    price = g.add_argument_group("pricing (default: the CIFAR network C=36 x 20 cells and ImageNet C=48 x 14; a mobile "
                                 "architecture: its layout at 32 px, 10 classes, or 224 px, 1000 classes)")
    price.add_argument("--channels", type=int, metavar="C", help="initial channels")
    price.add_argument("--cells", type=int, metavar="L", help="number of cells")
    price.add_argument("--classes", type=int, metavar="K", help="classifier outputs")
    price.add_argument("--image-size", type=int, metavar="S", help="input side in pixels")
    price.add_argument("--in-channels", type=int, metavar="N", help="input channels (default 3)")
    price.add_argument("--imagenet", action="store_true",
                       help="the ImageNet network (three stride-2 stem convs); unset sizes then default to "
                            "C=48, 14 cells, 1000 classes, 224 px instead of C=36, 20 cells, 10 classes, 32 px")
    g.set_defaults(func=run)


def run(args) -> int:
    from archsearch.models import resolve_architecture
    from archsearch.spaces.darts.formats import format_for_path
    from archsearch.utils.io import atomic_write_text

    sizes = {k: getattr(args, k) for k in ("channels", "cells", "classes", "image_size", "in_channels")
             if getattr(args, k) is not None}
    if (args.to or args.output) and (sizes or args.imagenet):
        raise ConfigError("--to/--output write the genotype only; price it without them")
    fmt = args.to or (format_for_path(Path(args.output)) if args.output else None)
    if args.output and fmt is None:
        raise ConfigError(f"--output {args.output}: no format goes with that suffix; add --to json|darts|pycls")
    family, arch = resolve_architecture(args.ref)
    if fmt:
        text = family.write(arch, fmt)
        if args.output:
            atomic_write_text(Path(args.output), text)
            print(f"wrote {args.output} ({fmt})")
        else:
            sys.stdout.write(text)
        return 0
    priced = family.price(arch, sizes, args.imagenet)  # bad sizes fail before anything is printed
    for line in family.show(arch):
        print(line)
    for network, params, macs in priced:
        mult_adds = f"{macs / 1e6:.0f}" if macs >= 1e7 else f"{macs / 1e6:.3f}"
        print(f"{network}: {params / 1e6:.3f}M params, {mult_adds}M mult-adds")
    return 0
