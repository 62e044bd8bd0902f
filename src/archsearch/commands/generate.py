"""`archsearch generate RUN --flops T ...`: SGNAS architectures for FLOPs targets, one forward pass."""
from __future__ import annotations

import math
from pathlib import Path

from archsearch.commands import COMMANDS
from archsearch.errors import ConfigError


@COMMANDS.register("generate")
def register(sub) -> None:
    gen = sub.add_parser("generate", help="SGNAS: architectures for FLOPs targets from a trained generator")
    gen.add_argument("run", help="run directory of an sgnas search (or of `archsearch import sgnas`)")
    gen.add_argument("--flops", type=float, action="append", required=True,
                     help="target MFLOPs (conv mult-adds, repeatable)")
    gen.add_argument("--out", help="output folder (default RUN/generated)")
    gen.add_argument("--last", action="store_true", help="use the last generator, not the kept best one")
    gen.set_defaults(func=run)


def run(args) -> int:
    from archsearch.strategies.sgnas.generate import generate

    bad = [t for t in args.flops if not (math.isfinite(t) and t > 0)]
    if bad:
        raise ConfigError(f"--flops takes positive, finite MFLOPs targets, got {bad[0]}")
    results = generate(Path(args.run), args.flops, Path(args.out) if args.out else None, last=args.last)
    for r in results:
        note = "" if r["inside_trained_range"] else "  (outside the trained range)"
        print(f"target {r['target_flops_M']:g} MFLOPs: {r['flops_M']:.3f} MFLOPs ({100 * r['relative_error']:+.1f}%), "
              f"{r['params_M']:.3f}M params; with SE {r['se_flops_M']:.3f} MFLOPs, {r['se_params_M']:.3f}M{note}")
        print(f"  {r['short']}")
    if results:
        print(f"figure: {results[0]['figure']}")
    return 0
