"""`archsearch search CONFIG [key=value ...]`: run or resume an architecture search."""
from __future__ import annotations

from pathlib import Path

from archsearch.commands import COMMANDS


@COMMANDS.register("search")
def register(sub) -> None:
    s = sub.add_parser("search", help="run or resume an architecture search")
    s.add_argument("config", help="a YAML preset: file path or shipped preset name")
    s.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.epochs=1")
    s.add_argument("--out", help="run directory (default runs/<name>); an existing run resumes")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=run)


def run(args) -> int:
    from archsearch.config import load_config
    from archsearch.engine.execution import check_machine
    from archsearch.engine.search import run_search
    from archsearch.presets import resolve_config

    cfg = load_config(resolve_config(args.config), args.overrides)
    check_machine(cfg)  # e.g. cuda_graphs=true without CUDA: one line before the run directory exists
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    summary = run_search(cfg, out, progress=False if args.no_progress else None)
    if not summary:  # ranks other than 0 under torchrun
        return 0
    cost = summary["eval_network"]
    print(f"run directory: {out}")
    print(f"genotype: {out / 'genotype.json'}")
    for kind, d in summary["describe"].items():
        print(f"  {kind}: {d['ops']}")
    print(f"  {cost['network']}: {cost['params_M']:.3f}M params, {cost['mult_adds_M']:.4g}M mult-adds")
    return 0
