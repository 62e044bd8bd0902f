"""`archsearch import sgnas CHECKPOINT PRIOR_POOL --out RUN`: a run directory from released files."""
from __future__ import annotations

from pathlib import Path

from archsearch.commands import COMMANDS


@COMMANDS.register("import")
def register(sub) -> None:
    imp = sub.add_parser("import", help="make a run directory from another code base's released files")
    imp_sub = imp.add_subparsers(dest="source", required=True)
    isg = imp_sub.add_parser("sgnas", help="the SGNAS authors' generator and prior pool, for `generate`")
    isg.add_argument("checkpoint", help="their generator checkpoint (pretrained/imagenet/best_avg.pth)")
    isg.add_argument("prior_pool", help="their prior pool (pretrained/imagenet/prior_pool.json)")
    isg.add_argument("--out", required=True, help="the run directory to write (must not hold a run)")
    isg.add_argument("--config", default="sgnas_imagenet", help="the search preset it stands for")
    isg.set_defaults(func=run_sgnas)


def run_sgnas(args) -> int:
    from archsearch.interop.sgnas_release import import_sgnas
    from archsearch.presets import resolve_config

    out = Path(args.out)
    rec = import_sgnas(Path(args.checkpoint), Path(args.prior_pool), out, resolve_config(args.config))
    ev = rec["evaluation"]
    targets = ev["targets_M"]
    print(f"imported the {rec['source']} generator into {out} ({args.config}, decoding {rec['decoding']})")
    for key, p in rec["priors"].items():
        print(f"  prior {key}: {p['lut_flops_M']:.2f} MFLOPs  {p['short']}")
    print(f"  targets {targets[0]:g}..{targets[-1]:g}: summed FLOPs loss {ev['eval_hc']:.3f}, "
          f"Kendall tau {ev['eval_kendall']:.3f}")
    print(f"next: archsearch generate {out} --flops T ...")
    return 0
