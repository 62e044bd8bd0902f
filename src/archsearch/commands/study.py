"""`archsearch study STUDY`: searches x seeds, retraining, random baselines, one report."""
from __future__ import annotations

import sys
from pathlib import Path

from archsearch.commands import COMMANDS


@COMMANDS.register("study")
def register(sub) -> None:
    s = sub.add_parser("study", help="compare search methods with random architectures (search, retrain, report)")
    s.add_argument("config", help="a study preset or YAML file")
    s.add_argument("overrides", nargs="*", help="key=value overrides, e.g. executor.workers=4")
    s.add_argument("--out", help="study directory (default runs/<name>); an existing study resumes")
    s.add_argument("--no-progress", action="store_true", help="no progress bar (one line per finished run stays)")
    s.add_argument("--report-only", action="store_true",
                   help="run nothing: write results.csv, summary.json and report.md from the runs finished so far")
    s.set_defaults(func=run)


def run(args) -> int:
    from archsearch.config import load_config
    from archsearch.presets import resolve_config
    from archsearch.studies.config import StudyConfig
    from archsearch.studies.report import verdicts
    from archsearch.studies.study import run_study

    cfg = load_config(resolve_config(args.config), args.overrides, schema=StudyConfig)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    summary = run_study(cfg, out, progress=False if args.no_progress else None, report_only=args.report_only)
    print(f"study directory: {out} (report.md, results.csv, summary.json)")
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    for name, m in summary["methods"].items():
        if m["mean"] is not None:
            print(f"  {name}: {summary['metric']} {100 * m['mean']:.2f} ± {100 * m['std']:.2f} over {m['runs']} runs")
    for line in verdicts(summary):
        print(f"  {line}")
    if summary["failed"] and args.report_only:
        print(f"{len(summary['failed'])} runs have not finished yet; the report covers the others")
    elif summary["failed"]:
        print(f"{len(summary['failed'])} runs did not finish (see report.md); run the same command again to retry them")
        return 1
    return 0
