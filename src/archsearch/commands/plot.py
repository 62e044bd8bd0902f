"""`archsearch plot RUN`: anytime architecture weights, their entropy and the derived cells."""
from __future__ import annotations

from pathlib import Path

from archsearch.commands import COMMANDS


@COMMANDS.register("plot")
def register(sub) -> None:
    pl = sub.add_parser("plot", help="draw a run's anytime architecture weights, their entropy and its cells")
    pl.add_argument("run", help="a search run directory")
    pl.add_argument("--formats", default="png,svg,pdf", help="comma-separated: png, svg, pdf")
    pl.set_defaults(func=run)


def run(args) -> int:
    from archsearch.viz import plot_run

    files, entropy = plot_run(Path(args.run), [f.strip() for f in args.formats.split(",") if f.strip()])
    for f in files:
        print(f)
    for kind, e in entropy.items():
        print(f"{kind}: mean edge entropy {e['start']:.3f} nats at step {e['start_step']} -> {e['end']:.3f} "
              f"at step {e['end_step']} (uniform {e['uniform']:.3f}); mean top probability "
              f"{e['max_prob_start']:.3f} -> {e['max_prob_end']:.3f}; edges with top probability > 0.9: "
              f"{e['one_hot_edges_start']} -> {e['one_hot_edges_end']} of {e['edges']}")
    return 0
