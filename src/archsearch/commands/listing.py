"""`archsearch list [WHAT]`: the registered components, presets and published genotypes."""
from __future__ import annotations

from archsearch.commands import COMMANDS

WHAT = ("genotypes", "spaces", "strategies", "objectives", "datasets", "models", "configs")


@COMMANDS.register("list")
def register(sub) -> None:
    ls = sub.add_parser("list", help="list registered components")
    ls.add_argument("what", nargs="?", default="all", choices=["all", *WHAT])
    ls.set_defaults(func=run)


def _tables() -> dict:
    from archsearch.data import list_datasets
    from archsearch.models import list_models
    from archsearch.objectives import list_objectives
    from archsearch.presets import list_presets
    from archsearch.spaces import list_spaces
    from archsearch.spaces.darts.genotype import published_genotypes
    from archsearch.strategies import list_strategies

    return {
        "genotypes": lambda: sorted(published_genotypes()),
        "spaces": list_spaces,
        "strategies": list_strategies,
        "objectives": list_objectives,
        "datasets": list_datasets,
        "models": list_models,
        "configs": list_presets,
    }


def run(args) -> int:
    tables = _tables()
    for name in WHAT if args.what == "all" else [args.what]:
        print(f"{name}:")
        for item in tables[name]():
            print(f"  {item}")
    return 0
