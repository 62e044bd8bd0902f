"""Atomic file writes and safe reading: a crash never leaves a half-written file, a damaged or
hostile file becomes one clear error."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archsearch.errors import ArchsearchError, CheckpointError, DataError

# _atomic's temporary names: ".<name>.<8 random characters>.tmp" (tempfile.mkstemp)
TEMP_NAME = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


def _atomic(path: Path, write) -> None:
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    nearest = next(a for a in path.parents if a.exists())
    if not nearest.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder", str(nearest))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:  # name the file (disk full)
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    _atomic(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def atomic_write_npz(path: Path, **arrays: np.ndarray) -> None:
    """An uncompressed numpy archive of `arrays`, by name."""
    _atomic(path, lambda f: np.savez(f, **arrays))


def atomic_torch_save(path: Path, obj: Any) -> None:
    def write(f):
        try:
            torch.save(obj, f)
        except RuntimeError as e:  # torch's zip writer reports a failed write (disk full) as its own error
            if isinstance(e.__context__, OSError):
                raise e.__context__ from None
            raise

    _atomic(path, write)


def is_temp_file(path: Path) -> bool:
    """A temporary file of an atomic write that a kill left behind."""
    return bool(TEMP_NAME.fullmatch(Path(path).name))


def remove_temp_files(folder: Path) -> list[Path]:
    """Delete what killed atomic writes left in `folder` (not below it); returns what was removed."""
    removed = [p for p in Path(folder).iterdir() if is_temp_file(p) and p.is_file()]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def content_hash(obj: Any) -> str:
    """sha256 of a JSON value in canonical form (sorted keys, no spaces)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_small_text(path: Path, limit: int, what: str, error: type[ArchsearchError] = DataError,
                    not_text: type[ArchsearchError] | None = None, not_text_hint: str = "") -> str:
    """A UTF-8 file of at most `limit` bytes (checked before reading), with one-line errors naming
    `what` it should be: missing, too large, not text (`not_text` raised, with `not_text_hint`), unreadable."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limit:
            raise error(f"{path}: {size} bytes is too large for a {what}")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except UnicodeDecodeError:
        raise (not_text or error)(f"{path}: not a text file{not_text_hint}") from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None


def read_json(path: Path, error: type[ArchsearchError] = DataError) -> Any:
    """A JSON file's value; a missing, unreadable, malformed or absurdly nested file is `error`."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path} not found") from None
    except UnicodeDecodeError:
        raise error(f"{path} is not a text file") from None
    except json.JSONDecodeError as e:
        raise error(f"{path} is not valid JSON: {e}") from None
    except RecursionError:
        raise error(f"{path} is nested too deeply to be a file archsearch wrote") from None


def safe_torch_load(path: Path, what: str = "") -> Any:
    """torch.load with weights_only=True; a damaged file, or one holding more than tensors and plain
    values, is a CheckpointError (`what` names the kind of file in the message)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message advises weights_only=False or allow-listing, which would run what the file holds
        text = " ".join(str(e).split())
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:
            raise CheckpointError(f"{path} is refused for safety: it holds a Python object ({found.group(1)}) besides "
                                  "tensors and plain values, and archsearch never unpickles those") from None
        detail = re.search(r"WeightsUnpickler error: (.*?)(?:\.|\s+Check the documentation|$)", text)
        raise CheckpointError(f"cannot read {what}{path}: not a file archsearch wrote, or damaged "
                              f"({detail.group(1) if detail else 'UnpicklingError'})") from None
    except Exception as e:  # truncated zip, wrong format ...
        raise CheckpointError(f"cannot read {what}{path}: {type(e).__name__}: {e}") from None


def load_checkpoint(path: Path) -> dict:
    """An archsearch checkpoint or model file, loaded weights-only; any damage is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    ckpt = safe_torch_load(path, "checkpoint ")
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise CheckpointError(f"{path} is not an archsearch checkpoint")
    return ckpt
