"""`archsearch bench PRESET`: time the reference and the fast supernet (or, with --train, training)."""
from __future__ import annotations

from archsearch.commands import COMMANDS
from archsearch.errors import ConfigError


@COMMANDS.register("bench")
def register(sub) -> None:
    b = sub.add_parser("bench", help="time the reference and the fast supernet on one configuration")
    b.add_argument("config", help="a search preset or YAML file (its data, space and strategy)")
    b.add_argument("overrides", nargs="*", help="key=value overrides, e.g. data.batch_size=64")
    b.add_argument("--steps", type=int, default=3, help="timed steps per path (after 2 warm-up steps)")
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
    if args.train:
        from archsearch.bench.train import format_train_bench, run_train_bench

        print(format_train_bench(run_train_bench(cfg, steps=args.steps)))
    else:
        from archsearch.bench.search import format_results, run_bench

        print(format_results(cfg, run_bench(cfg, steps=args.steps)))
    return 0
