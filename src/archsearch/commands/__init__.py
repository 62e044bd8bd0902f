"""One module per `archsearch` subcommand: its arguments, and the call into the library that does
the work. A module registers itself in COMMANDS; cli.py builds the parser in the order below."""
from __future__ import annotations

import argparse
from typing import Callable

from archsearch.registry import Registry

# register(subparsers) adds the command's parser and sets `func` to its run(args) -> exit code
COMMANDS: Registry[Callable[[argparse._SubParsersAction], None]] = Registry("command")
ORDER = ("search", "derive", "train", "export", "genotype", "plot", "generate", "import", "correlate", "study", "bench", "list")

from archsearch.commands import (  # noqa: E402,F401  (register the commands)
    bench,
    correlate,
    derive,
    export,
    generate,
    genotype,
    importer,
    listing,
    plot,
    search,
    study,
    train,
)


def add_commands(sub: argparse._SubParsersAction) -> None:
    for name in ORDER:
        COMMANDS.get(name)(sub)
