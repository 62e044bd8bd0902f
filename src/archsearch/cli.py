"""Command line: `archsearch <command>`; each command lives in archsearch/commands/.

User errors print one line and exit 2; `list` shows what is registered.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback

from archsearch.failures import user_message
from archsearch.heldwarnings import drop_warnings, holding, release_warnings


def version() -> str:
    """The installed package's version (`archsearch --version`)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("archsearch")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    from archsearch.commands import add_commands

    p = argparse.ArgumentParser(prog="archsearch", description=__doc__)
    p.add_argument("--version", action="version", version=f"archsearch {version()}")
    add_commands(p.add_subparsers(dest="command", required=True))
    return p


def _stop_on_sigterm(signum, frame):
    """torchrun stops the other ranks with SIGTERM when one fails: say what to do, then exit."""
    rank = os.environ.get("RANK")
    who = f"rank {rank}" if rank is not None else "archsearch"
    print(f"archsearch: {who} stopped by SIGTERM (under torchrun: another rank failed); run the same command "
          "again to resume from the last checkpoint", file=sys.stderr)
    raise SystemExit(143)


def _debug() -> bool:
    return os.environ.get("ARCHSEARCH_DEBUG", "") not in ("", "0")


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
    with holding():  # warnings wait until the run starts: a user error stays the one line printed
        try:
            code = args.func(args)
        except KeyboardInterrupt:
            print("archsearch: interrupted; run the same command again to resume from the last checkpoint",
                  file=sys.stderr)
            return 130
        except BrokenPipeError:  # the reader went away (`archsearch list -v | head`): stop quietly, as a shell tool
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
            return 141
        except Exception as e:  # the last resort: expected OS/data failures become one line, bugs keep a traceback
            message = user_message(e)
            if message is None:
                release_warnings()
                raise
            if _debug():
                release_warnings()
                traceback.print_exc()
            else:
                drop_warnings()
            print(f"archsearch: error: {message}", file=sys.stderr)
            return 2
        release_warnings()
        return code
