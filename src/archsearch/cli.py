"""Command line: `archsearch search|list ...`. User errors print one line and exit non-zero."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from archsearch.errors import ArchsearchError, ConfigError

PRESETS = Path(__file__).parent / "configs"


def resolve_config(name: str) -> Path:
    """A path to a YAML file, or the name of a shipped preset (with or without .yaml)."""
    p = Path(name)
    if p.is_file():
        return p
    preset = PRESETS / (p.name if p.suffix else p.name + ".yaml")
    if preset.is_file():
        return preset
    raise ConfigError(f"config {name!r} not found (neither a file nor a preset; see `archsearch list configs`)")


def cmd_search(args) -> int:
    from archsearch.config import load_config
    from archsearch.engine.search import run_search

    path = resolve_config(args.config)
    cfg = load_config(path, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    summary = run_search(cfg, out, progress=False if args.no_progress else None)
    arch = summary["describe"]
    cost = summary["eval_network"]
    print(f"run directory: {out}")
    print(f"genotype: {out / 'genotype.json'}")
    for kind, d in arch.items():
        print(f"  {kind}: {d['ops']}")
    print(f"  evaluation network ({cost['layers']} cells, C={cost['init_channels']}): "
          f"{cost['params_M']:.3f}M params, {cost['mult_adds_M']:.0f}M mult-adds")
    return 0


def cmd_bench(args) -> int:
    from archsearch.bench import format_results, run_bench
    from archsearch.config import load_config

    cfg = load_config(resolve_config(args.config), args.overrides)
    print(format_results(cfg, run_bench(cfg, steps=args.steps)))
    return 0


def cmd_genotype(args) -> int:
    from archsearch.spaces.darts.cost import network_cost
    from archsearch.spaces.darts.genotype import resolve_genotype

    g = resolve_genotype(args.ref)
    for kind in ("normal", "reduce"):
        cell = getattr(g, kind)
        nodes = "  ".join(f"{i}: {cell[2 * i][0]}<-{cell[2 * i][1]}, {cell[2 * i + 1][0]}<-{cell[2 * i + 1][1]}"
                          for i in range(len(cell) // 2))
        print(f"{kind:7s} {nodes}  concat {list(getattr(g, kind + '_concat'))}")
    cifar = network_cost(g, 36, 20, num_classes=10)
    imnet = network_cost(g, 48, 14, num_classes=1000, image_size=224, imagenet=True)
    print(f"CIFAR network (C=36, 20 cells): {cifar.params / 1e6:.3f}M params, {cifar.macs / 1e6:.0f}M mult-adds")
    print(f"ImageNet network (C=48, 14 cells): {imnet.params / 1e6:.3f}M params, {imnet.macs / 1e6:.0f}M mult-adds")
    return 0


def cmd_plot(args) -> int:
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


def cmd_list(args) -> int:
    from archsearch.data import list_datasets
    from archsearch.objectives import list_objectives
    from archsearch.spaces import list_spaces
    from archsearch.spaces.darts.genotype import published_genotypes
    from archsearch.strategies import list_strategies

    tables = {
        "genotypes": lambda: sorted(published_genotypes()),
        "spaces": list_spaces,
        "strategies": list_strategies,
        "objectives": list_objectives,
        "datasets": list_datasets,
        "configs": lambda: sorted(p.stem for p in PRESETS.glob("*.yaml")),
    }
    for name in tables if args.what == "all" else [args.what]:
        print(f"{name}:")
        for item in tables[name]():
            print(f"  {item}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="archsearch", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("search", help="run or resume an architecture search")
    s.add_argument("config", help="a YAML preset: file path or shipped preset name")
    s.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.epochs=1")
    s.add_argument("--out", help="run directory (default runs/<name>); an existing run resumes")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_search)

    b = sub.add_parser("bench", help="time the reference and the fast supernet on one configuration")
    b.add_argument("config", help="a search preset or YAML file (its data, space and strategy)")
    b.add_argument("overrides", nargs="*", help="key=value overrides, e.g. data.batch_size=64")
    b.add_argument("--steps", type=int, default=3, help="timed steps per path (after 2 warm-up steps)")
    b.set_defaults(func=cmd_bench)

    g = sub.add_parser("genotype", help="show a genotype and the cost of its evaluation networks")
    g.add_argument("ref", help="genotype JSON file, run directory, or published name")
    g.set_defaults(func=cmd_genotype)

    pl = sub.add_parser("plot", help="draw a run's anytime architecture weights, their entropy and its cells")
    pl.add_argument("run", help="a search run directory")
    pl.add_argument("--formats", default="png,svg,pdf", help="comma-separated: png, svg, pdf")
    pl.set_defaults(func=cmd_plot)

    ls = sub.add_parser("list", help="list registered components")
    ls.add_argument("what", nargs="?", default="all",
                    choices=["all", "genotypes", "spaces", "strategies", "objectives", "datasets", "configs"])
    ls.set_defaults(func=cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ArchsearchError as e:
        print(f"archsearch: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("archsearch: interrupted; run the same command again to resume from the last checkpoint",
              file=sys.stderr)
        return 130
