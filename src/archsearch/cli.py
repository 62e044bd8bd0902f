"""Command line: `archsearch search|train|export|correlate|genotype|list|bench`. User errors print one line, exit 2."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
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
    if not summary:  # ranks other than 0 under torchrun
        return 0
    arch = summary["describe"]
    cost = summary["eval_network"]
    print(f"run directory: {out}")
    print(f"genotype: {out / 'genotype.json'}")
    for kind, d in arch.items():
        print(f"  {kind}: {d['ops']}")
    if "mult_adds_M" in cost:
        print(f"  evaluation network ({cost['layers']} cells, C={cost['init_channels']}): "
              f"{cost['params_M']:.3f}M params, {cost['mult_adds_M']:.0f}M mult-adds")
    else:
        print(f"  stand-alone network: {cost['params_M']:.3f}M params, {cost['flops_M']:.3f} MFLOPs (conv)")
    return 0


def cmd_train(args) -> int:
    from archsearch.config import TrainConfig, load_config
    from archsearch.engine.train import run_train

    preset = [a for a in args.args if "=" not in a]
    overrides = [a for a in args.args if "=" in a]
    if len(preset) > 1:
        raise ConfigError(f"one training preset at most, got {' '.join(preset)}")
    path = resolve_config(preset[0] if preset else "train_fashionmnist")
    ref = args.genotype or args.run
    if ref:
        # OmegaConf reads an override's value as YAML: quoted (a JSON string is a YAML scalar), a
        # genotype given as a YAML list or a JSON object stays the text the model family resolves
        overrides.append(f"model.genotype={json.dumps(ref)}")
    cfg = load_config(path, overrides, schema=TrainConfig)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    summary = run_train(cfg, out, progress=False if args.no_progress else None)
    if summary:  # rank 0
        final = summary["final"]
        print(f"run directory: {out}")
        print(f"  {summary['params_M']:.3f}M params, {summary['mult_adds_M']:.1f}M mult-adds")
        print(f"  test: {', '.join(f'{k}={v:.4f}' for k, v in final.items())}")
        best = summary["best"]
        key = next(k for k in best if k != "epoch")  # test_top1, test_miou, ...
        print(f"  best {key} {best[key]:.4f} at epoch {best['epoch']}")
    return 0


def cmd_export(args) -> int:
    from archsearch.export import export

    out, diff = export(Path(args.model), args.format, Path(args.output) if args.output else None)
    print(f"wrote {out} (max |difference| from PyTorch on a random batch: {diff:.2e})")
    return 0


def cmd_correlate(args) -> int:
    from archsearch.config import CorrelateConfig, load_config
    from archsearch.studies.correlate import run_correlate

    cfg = load_config(resolve_config(args.config), args.overrides, schema=CorrelateConfig)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    result = run_correlate(cfg, out, progress=False if args.no_progress else None)
    print(f"study directory: {out} ({result['architectures']} architectures)")
    for p in result["pairs"]:
        print(f"  {p['x']} vs {p['y']}: Spearman rho {p['spearman_rho']:.3f} (p={p['spearman_p']:.2g}), "
              f"Kendall tau {p['kendall_tau']:.3f}, n={p['n']}")
    return 0


def cmd_bench(args) -> int:
    from archsearch.bench import format_results, run_bench
    from archsearch.config import load_config

    if args.train:
        from archsearch.bench_train import format_train_bench, run_train_bench
        from archsearch.config import TrainConfig

        cfg = load_config(resolve_config(args.config), args.overrides, schema=TrainConfig)
        print(format_train_bench(run_train_bench(cfg, steps=args.steps)))
        return 0
    cfg = load_config(resolve_config(args.config), args.overrides)
    print(format_results(cfg, run_bench(cfg, steps=args.steps)))
    return 0


def cmd_genotype(args) -> int:
    from dataclasses import replace

    from archsearch.spaces.darts.formats import format_for_path, resolve_genotype, write_genotype
    from archsearch.spaces.darts.pricing import CIFAR, IMAGENET
    from archsearch.utils.io import atomic_write_text

    sizes = {k: getattr(args, k) for k in ("channels", "cells", "classes", "image_size", "in_channels")
             if getattr(args, k) is not None}
    if (args.to or args.output) and (sizes or args.imagenet):
        raise ConfigError("--to/--output write the genotype only; price it without them")
    fmt = args.to or (format_for_path(Path(args.output)) if args.output else None)
    if args.output and fmt is None:
        raise ConfigError(f"--output {args.output}: no format goes with that suffix; add --to json|darts|pycls")
    g = resolve_genotype(args.ref)
    if fmt:
        text = write_genotype(g, fmt)
        if args.output:
            atomic_write_text(Path(args.output), text)
            print(f"wrote {args.output} ({fmt})")
        else:
            sys.stdout.write(text)
        return 0
    nets = [replace(IMAGENET if args.imagenet else CIFAR, **sizes)] if sizes or args.imagenet else [CIFAR, IMAGENET]
    costs = [net.cost(g) for net in nets]  # bad sizes fail before anything is printed
    for kind in ("normal", "reduce"):
        cell = getattr(g, kind)
        nodes = "  ".join(f"{i}: {cell[2 * i][0]}<-{cell[2 * i][1]}, {cell[2 * i + 1][0]}<-{cell[2 * i + 1][1]}"
                          for i in range(len(cell) // 2))
        print(f"{kind:7s} {nodes}  concat {list(getattr(g, kind + '_concat'))}")
    for net, cost in zip(nets, costs):
        macs = f"{cost.macs / 1e6:.0f}" if cost.macs >= 1e7 else f"{cost.macs / 1e6:.3f}"
        print(f"{net.describe()}: {cost.params / 1e6:.3f}M params, {macs}M mult-adds")
    return 0


def cmd_generate(args) -> int:
    from archsearch.generate import generate

    results = generate(Path(args.run), args.flops, Path(args.out) if args.out else None, last=args.last)
    for r in results:
        note = "" if r["inside_trained_range"] else "  (outside the trained range)"
        print(f"target {r['target_flops_M']:g} MFLOPs: {r['flops_M']:.3f} MFLOPs ({100 * r['relative_error']:+.1f}%), "
              f"{r['params_M']:.3f}M params; with SE {r['se_flops_M']:.3f} MFLOPs, {r['se_params_M']:.3f}M{note}")
        print(f"  {r['short']}")
    if results:
        print(f"figure: {results[0]['figure']}")
    return 0


def cmd_import_sgnas(args) -> int:
    from archsearch.interop.sgnas_release import import_sgnas

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
    from archsearch.models import list_models
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
        "models": list_models,
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

    t = sub.add_parser("train", help="train a found architecture from scratch (evaluation)")
    t.add_argument("args", nargs="*", metavar="[PRESET] key=value",
                   help="a training preset (default train_fashionmnist) and key=value overrides")
    which = t.add_mutually_exclusive_group()
    which.add_argument("--genotype",
                       help="published genotype name, or a genotype file or text in any format `archsearch "
                            "genotype` reads (archsearch JSON, DARTS Genotype(...) repr, pycls/UnNAS YAML)")
    which.add_argument("--run", help="a search run directory (its genotype.json)")
    t.add_argument("--out", help="run directory (default runs/<name>); an existing run resumes")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("export", help="export a trained network to TorchScript or ONNX")
    e.add_argument("model", help="a training run directory or a model file (model.pt, best.pt)")
    e.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    e.add_argument("--output", help="output file (default: model.onnx / model.ts next to the model)")
    e.set_defaults(func=cmd_export)

    c = sub.add_parser("correlate", help="rank correlation of architectures across objectives (UnNAS)")
    c.add_argument("config", help="a correlation-study preset or YAML file")
    c.add_argument("overrides", nargs="*", help="key=value overrides, e.g. num_archs=20")
    c.add_argument("--out", help="study directory (default runs/<name>); an existing study resumes")
    c.add_argument("--no-progress", action="store_true", help="no progress bars")
    c.set_defaults(func=cmd_correlate)

    b = sub.add_parser("bench", help="time the reference and the fast supernet on one configuration")
    b.add_argument("config", help="a search preset or YAML file (its data, space and strategy)")
    b.add_argument("overrides", nargs="*", help="key=value overrides, e.g. data.batch_size=64")
    b.add_argument("--steps", type=int, default=3, help="timed steps per path (after 2 warm-up steps)")
    b.add_argument("--train", action="store_true",
                   help="CONFIG is a training preset: time data loading, the training step and both together")
    b.set_defaults(func=cmd_bench)

    g = sub.add_parser("genotype", help="show a genotype and the cost of its evaluation networks, or convert it")
    g.add_argument("ref", help="published name, run directory, or a genotype file or text: archsearch JSON, a DARTS "
                               "Genotype(...) repr, or pycls/UnNAS YAML (NAS.CUSTOM_GENOTYPE or the bare 4-item list)")
    g.add_argument("--to", metavar="FORMAT", help="print the genotype in this format instead: json, darts or pycls")
    g.add_argument("--output", metavar="FILE",
                   help="write the converted genotype to FILE (atomically); without --to the suffix picks the format")
    price = g.add_argument_group("pricing (default: the CIFAR network C=36 x 20 cells and ImageNet C=48 x 14)")
    price.add_argument("--channels", type=int, metavar="C", help="initial channels")
    price.add_argument("--cells", type=int, metavar="L", help="number of cells")
    price.add_argument("--classes", type=int, metavar="K", help="classifier outputs")
    price.add_argument("--image-size", type=int, metavar="S", help="input side in pixels")
    price.add_argument("--in-channels", type=int, metavar="N", help="input channels (default 3)")
    price.add_argument("--imagenet", action="store_true",
                       help="the ImageNet network (three stride-2 stem convs); unset sizes then default to "
                            "C=48, 14 cells, 1000 classes, 224 px instead of C=36, 20 cells, 10 classes, 32 px")
    g.set_defaults(func=cmd_genotype)

    gen = sub.add_parser("generate", help="SGNAS: architectures for FLOPs targets from a trained generator")
    gen.add_argument("run", help="run directory of an sgnas search")
    gen.add_argument("--flops", type=float, action="append", required=True,
                     help="target MFLOPs (conv mult-adds, repeatable)")
    gen.add_argument("--out", help="output folder (default RUN/generated)")
    gen.add_argument("--last", action="store_true", help="use the last generator, not the kept best one")
    gen.set_defaults(func=cmd_generate)

    imp = sub.add_parser("import", help="make a run directory from another code base's released files")
    imp_sub = imp.add_subparsers(dest="source", required=True)
    isg = imp_sub.add_parser("sgnas", help="the SGNAS authors' generator and prior pool, for `generate`")
    isg.add_argument("checkpoint", help="their generator checkpoint (pretrained/imagenet/best_avg.pth)")
    isg.add_argument("prior_pool", help="their prior pool (pretrained/imagenet/prior_pool.json)")
    isg.add_argument("--out", required=True, help="the run directory to write (must not hold a run)")
    isg.add_argument("--config", default="sgnas_imagenet", help="the search preset it stands for")
    isg.set_defaults(func=cmd_import_sgnas)


    pl = sub.add_parser("plot", help="draw a run's anytime architecture weights, their entropy and its cells")
    pl.add_argument("run", help="a search run directory")
    pl.add_argument("--formats", default="png,svg,pdf", help="comma-separated: png, svg, pdf")
    pl.set_defaults(func=cmd_plot)

    ls = sub.add_parser("list", help="list registered components")
    ls.add_argument("what", nargs="?", default="all",
                    choices=["all", "genotypes", "spaces", "strategies", "objectives", "datasets", "models",
                             "configs"])
    ls.set_defaults(func=cmd_list)
    return p


def _stop_on_sigterm(signum, frame):
    """torchrun stops the other ranks with SIGTERM when one fails: say what to do, then exit."""
    rank = os.environ.get("RANK")
    who = f"rank {rank}" if rank is not None else "archsearch"
    print(f"archsearch: {who} stopped by SIGTERM (under torchrun: another rank failed); run the same command "
          "again to resume from the last checkpoint", file=sys.stderr)
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also follow the options (`train --genotype X optim.epochs=1`)
    target = "overrides" if hasattr(args, "overrides") else "args" if hasattr(args, "args") else None
    if extra and (target is None or any(a.startswith("-") or "=" not in a for a in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        setattr(args, target, [*getattr(args, target), *extra])
    try:
        return args.func(args)
    except ArchsearchError as e:
        print(f"archsearch: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("archsearch: interrupted; run the same command again to resume from the last checkpoint",
              file=sys.stderr)
        return 130
