"""`archsearch bench PRESET`: time the supernet formulations (or, with --train, training)."""
from __future__ import annotations

from archsearch.commands import COMMANDS
from archsearch.errors import ConfigError


@COMMANDS.register("bench")
def register(sub) -> None:
    b = sub.add_parser("bench", help="time the reference, fast and batched supernet on one configuration")
    b.add_argument("config", help="a search preset or YAML file (its data, space and strategy)")
    b.add_argument("overrides", nargs="*", help="key=value overrides, e.g. data.batch_size=64")
    b.add_argument("--steps", type=int, default=3, help="timed steps per path (after 2 warm-up steps)")
    b.add_argument("--impls", default="reference,fast,batched",
                   help="comma-separated supernet formulations to time (ratios are against reference)")
    b.add_argument("--json", metavar="PATH", help="also write the search-bench results as JSON")
    b.add_argument("--train", action="store_true",
                   help="CONFIG is a training preset: time data loading, the training step and both together")
    b.set_defaults(func=run)


def run(args) -> int:
    from archsearch.config import SearchConfig, TrainConfig, load_config
    from archsearch.presets import resolve_config

    if args.steps < 1:
        raise ConfigError(f"--steps must be at least 1 (timed steps per path), got {args.steps}")
    schema = TrainConfig if args.train else SearchConfig
    cfg = load_config(resolve_config(args.config), args.overrides, schema=schema)
    if not args.train:
        from archsearch.engine.execution import check_machine

        check_machine(cfg)  # e.g. cuda_graphs=true without CUDA
    if args.train:
        from archsearch.bench.train import format_train_bench, run_train_bench

        print(format_train_bench(run_train_bench(cfg, steps=args.steps)))
    else:
        from archsearch.bench.search import format_results, results_json, run_bench
        from archsearch.spaces.darts.supernet import IMPLS
        from archsearch.utils.io import atomic_write_json

        impls = [i for i in args.impls.split(",") if i]
        if not impls or set(impls) - set(IMPLS):
            raise ConfigError(f"--impls takes a comma-separated subset of {', '.join(IMPLS)}, got {args.impls!r}")
        results = run_bench(cfg, steps=args.steps, impls=impls)
        print(format_results(cfg, results))
        if args.json:
            atomic_write_json(args.json, results_json(cfg, results))
    return 0
