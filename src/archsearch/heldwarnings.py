"""Warnings are held back while a command sets up, so that a user error is the only line it prints.

The command line holds them from the start; a run releases them once its directory is accepted
(`RunDir.begin`), and from then on each shows at once, as one line. A command that ends in a user
error drops what it held; one that succeeds, or fails with a bug, shows it. Library use (no
`holding()`) is unaffected.
"""
from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from typing import Iterator, Optional

# advice about settings the user chose on purpose (more loader workers than cores), and torch's notes
# on the torch.jit calls TorchScript export makes (nothing a user of archsearch can act on)
KNOWN = [(r"This DataLoader will create \d+ worker processes", UserWarning),
         (r"`torch\.jit\.\w+` is deprecated", FutureWarning)]

_held: Optional[list[str]] = None
_active = False


def _show(message, category, filename, lineno, file=None, line=None) -> None:
    text = f"archsearch: warning: {category.__name__}: {' '.join(str(message).split())}"
    if _held is None:
        print(text, file=sys.stderr)
    elif text not in _held:
        _held.append(text)


@contextmanager
def holding() -> Iterator[None]:
    """Hold warnings (one line each, repeats dropped) until `release_warnings()` or the end."""
    global _held, _active
    with warnings.catch_warnings():
        for message, category in KNOWN:
            warnings.filterwarnings("ignore", message=message, category=category)
        warnings.showwarning = _show
        _held, _active = [], True
        try:
            yield
        finally:
            _held, _active = None, False


def release_warnings() -> None:
    """Show what was held; later warnings show at once."""
    global _held
    held, _held = _held, None
    if _active:
        for text in held or []:
            print(text, file=sys.stderr)


def drop_warnings() -> None:
    """Forget what was held (a user error is about to be the command's one line)."""
    global _held
    if _held is not None:
        _held = []
