"""`archsearch correlate STUDY`: UnNAS rank correlation of architectures across objectives."""
from __future__ import annotations

from pathlib import Path

from archsearch.commands import COMMANDS


@COMMANDS.register("correlate")
def register(sub) -> None:
    c = sub.add_parser("correlate", help="rank correlation of architectures across objectives (UnNAS)")
    c.add_argument("config", help="a correlation-study preset or YAML file")
    c.add_argument("overrides", nargs="*", help="key=value overrides, e.g. num_archs=20 executor.workers=4")
    c.add_argument("--out", help="study directory (default runs/<name>); an existing study resumes")
    c.add_argument("--no-progress", action="store_true", help="no progress bars")
    c.set_defaults(func=run)


def run(args) -> int:
    from archsearch.config import load_config
    from archsearch.presets import resolve_config
    from archsearch.studies.config import CorrelateConfig
    from archsearch.studies.correlate import run_correlate

    cfg = load_config(resolve_config(args.config), args.overrides, schema=CorrelateConfig)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    result = run_correlate(cfg, out, progress=False if args.no_progress else None)
    print(f"study directory: {out} ({result['architectures']} architectures)")
    for p in result["pairs"]:
        print(f"  {p['x']} vs {p['y']}: Spearman rho {p['spearman_rho']:.3f} (p={p['spearman_p']:.2g}), "
              f"Kendall tau {p['kendall_tau']:.3f}, n={p['n']}")
    if result["failed"]:
        print(f"{len(result['failed'])} runs did not finish (the first: {result['failed'][0]['run']}: "
              f"{result['failed'][0]['error']}); run the same command again to retry them")
        return 1
    return 0
