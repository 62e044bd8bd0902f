"""Which exceptions are the user's situation rather than a bug, and the one line that says so.

The command line turns these into `archsearch: error: ...` and exit code 2; anything else keeps its
traceback (ARCHSEARCH_DEBUG=1 shows the traceback of every error).
"""
from __future__ import annotations

import errno
import os
import re
import zlib
from typing import Optional

from archsearch.errors import ArchsearchError

RESUME = "run the same command again to resume from the last checkpoint"
# a collective failing because another rank went away (gloo, NCCL, the c10d store)
PEER_LOST = re.compile(r"connection (reset|closed|refused)|broken pipe|read error|write error|socket closed|"
                       r"timed out|aborted|peer|remote worker", re.I)
WORKER_DIED = re.compile(r"DataLoader worker \(pid[^)]*\) (is killed by signal|exited unexpectedly)")
DISTRIBUTED = re.compile(r"gloo|nccl|c10d|tcpstore|ProcessGroup", re.I)
HINTS = {
    errno.ENOSPC: "free some space and run the same command again; a run resumes from its last checkpoint",
    errno.EDQUOT: "free some space and run the same command again; a run resumes from its last checkpoint",
    errno.EROFS: "the file system is read-only; choose another --out / --output",
    errno.EACCES: "check its permissions, or choose another --out / --output",
    errno.EPERM: "check its permissions, or choose another --out / --output",
    errno.ENAMETOOLONG: "the name is too long for a file (was a genotype meant as text?)",
}


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def worker_message(text: str) -> str:
    """The original message of an exception a DataLoader worker re-raised: torch puts the worker's
    traceback into the text, whose last line is `module.Error: message`."""
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    m = re.match(r"\s*[A-Za-z_][\w.]*(Error|Exception|Warning): (.*)$", last)
    return m.group(2) if m else last


def _under_torchrun() -> bool:
    return os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1")


def _lost_peer(e: BaseException) -> bool:
    if not (_under_torchrun() and isinstance(e, RuntimeError)):
        return False
    text = str(e)
    dist_error = any(c.__name__.startswith("Dist") for c in type(e).__mro__)
    return (dist_error or bool(DISTRIBUTED.search(text))) and bool(PEER_LOST.search(text))


def os_message(e: OSError) -> str:
    text = e.strerror or worker_message(str(e)) or type(e).__name__
    where = ""
    if e.filename is not None:
        where = f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 is not None else "") + ": "
    hint = HINTS.get(e.errno or -1)
    return f"{where}{text}" + (f" ({hint})" if hint else "")


def user_message(e: BaseException) -> Optional[str]:
    """The one line for an expected failure, or None for a bug."""
    if isinstance(e, ArchsearchError):
        return one_line(worker_message(str(e)))
    if _lost_peer(e):
        rank = os.environ.get("RANK", "?")
        return (f"rank {rank} lost its connection to another rank (under torchrun: another rank failed or was "
                f"killed); {RESUME}")
    if isinstance(e, RuntimeError) and WORKER_DIED.search(str(e)):
        return (f"a data loader worker died ({one_line(str(e))[:120]}), usually killed for lack of memory; free some "
                f"memory and {RESUME}, or lower data.num_workers in a new --out directory")
    if type(e).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
        return ("out of GPU memory; free the GPU and " + RESUME + ", or lower data.batch_size in a new --out "
                "directory")
    if isinstance(e, OSError):  # incl. PIL's UnidentifiedImageError and gzip's BadGzipFile
        return one_line(os_message(e))
    if isinstance(e, EOFError):
        return one_line(f"a file ended early, so it is truncated: {worker_message(str(e)) or 'EOFError'}")
    if isinstance(e, zlib.error):
        return one_line(f"a compressed file is damaged: {e}")
    if isinstance(e, RecursionError) and "JSON" in str(e):
        return "a JSON file is nested too deeply to be one archsearch reads"
    return None
