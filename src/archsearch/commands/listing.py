"""`archsearch list [WHAT]`: the registered components, presets and published genotypes."""
from __future__ import annotations

from archsearch.commands import COMMANDS

WHAT = ("genotypes", "spaces", "strategies", "objectives", "datasets", "models", "executors", "configs")


@COMMANDS.register("list")
def register(sub) -> None:
    ls = sub.add_parser("list", help="list registered components")
    ls.add_argument("what", nargs="?", default="all", choices=["all", *WHAT])
    ls.add_argument("-v", "--verbose", action="store_true",
                    help="spaces, strategies, objectives, models, executors: each one's options with defaults and help")
    ls.set_defaults(func=run)


def _tables() -> dict:
    from archsearch.data import list_datasets
    from archsearch.models import list_models
    from archsearch.objectives import list_objectives
    from archsearch.presets import list_presets
    from archsearch.spaces import list_spaces
    from archsearch.spaces.darts.genotype import published_genotypes
    from archsearch.strategies import list_strategies
    from archsearch.studies.executors import EXECUTORS

    return {
        "genotypes": lambda: sorted(published_genotypes()),
        "spaces": list_spaces,
        "strategies": list_strategies,
        "objectives": list_objectives,
        "datasets": list_datasets,
        "models": list_models,
        "executors": EXECUTORS.names,
        "configs": list_presets,
    }


def _registries() -> dict:
    from archsearch.models import MODELS
    from archsearch.objectives import OBJECTIVES
    from archsearch.spaces import SPACES
    from archsearch.strategies import STRATEGIES
    from archsearch.studies.executors import EXECUTORS

    return {"spaces": SPACES, "strategies": STRATEGIES, "objectives": OBJECTIVES, "models": MODELS,
            "executors": EXECUTORS}


def _options(registry, name: str) -> list[str]:
    """`  option = default  help` lines of one component's config dataclass."""
    from archsearch.config import describe_options

    rows = describe_options(registry.config_class(name))
    width = max((len(f"{k} = {d}") for k, d, _ in rows), default=0)
    return [f"    {f'{k} = {d}':{width}s}  {h}".rstrip() for k, d, h in rows]


def run(args) -> int:
    tables, registries = _tables(), _registries()
    for name in WHAT if args.what == "all" else [args.what]:
        print(f"{name}:")
        for item in tables[name]():
            print(f"  {item}")
            if args.verbose and name in registries:
                print("\n".join(_options(registries[name], item)))
    return 0
