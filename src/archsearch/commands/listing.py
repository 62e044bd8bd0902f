"""`archsearch list [WHAT]`: the registered components, presets, published genotypes and the
options of a run itself (`run`: the keys of `search` and `train` outside the component sections)."""
from __future__ import annotations

from archsearch.commands import COMMANDS

WHAT = ("genotypes", "spaces", "strategies", "objectives", "datasets", "models", "executors", "configs", "run")


@COMMANDS.register("list")
def register(sub) -> None:
    ls = sub.add_parser("list", help="list registered components")
    ls.add_argument("what", nargs="?", default="all", choices=["all", *WHAT])
    ls.add_argument("-v", "--verbose", action="store_true",
                    help="spaces, strategies, objectives, models, executors, run: each one's options with "
                         "defaults and help")
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
        "run": lambda: list(run_configs()),
    }


def _registries() -> dict:
    from archsearch.models import MODELS
    from archsearch.objectives import OBJECTIVES
    from archsearch.spaces import SPACES
    from archsearch.strategies import STRATEGIES
    from archsearch.studies.executors import EXECUTORS

    return {"spaces": SPACES, "strategies": STRATEGIES, "objectives": OBJECTIVES, "models": MODELS,
            "executors": EXECUTORS}


def run_configs() -> dict:
    """`list run`: the config dataclasses of `archsearch search` and `archsearch train`."""
    from archsearch.config import SearchConfig, TrainConfig

    return {"search": SearchConfig, "train": TrainConfig}


def options(rows: list[tuple[str, str, str]]) -> list[str]:
    """`    option = default  help` lines."""
    width = max((len(f"{k} = {d}") for k, d, _ in rows), default=0)
    return [f"    {f'{k} = {d}':{width}s}  {h}".rstrip() for k, d, h in rows]


def _rows(what: str, item: str, registries: dict) -> list[tuple[str, str, str]]:
    from archsearch.config import describe_options, describe_run

    if what == "run":
        return describe_run(run_configs()[item])
    return describe_options(registries[what].config_class(item))


def run(args) -> int:
    tables, registries = _tables(), _registries()
    for name in WHAT if args.what == "all" else [args.what]:
        print(f"{name}:")
        for item in tables[name]():
            print(f"  {item}")
            if args.verbose and (name in registries or name == "run"):
                print("\n".join(options(_rows(name, item, registries))))
    return 0
