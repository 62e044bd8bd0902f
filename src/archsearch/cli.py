"""Command line: `archsearch <command>`; each command lives in archsearch/commands/.

User errors print one line and exit 2; `list` shows what is registered.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from archsearch.errors import ArchsearchError


def build_parser() -> argparse.ArgumentParser:
    from archsearch.commands import add_commands

    p = argparse.ArgumentParser(prog="archsearch", description=__doc__)
    add_commands(p.add_subparsers(dest="command", required=True))
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
