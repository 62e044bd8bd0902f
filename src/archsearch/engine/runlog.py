"""Run-directory logs: JSONL metrics and architecture history, mirrored to TensorBoard.

JSONL files are appended line by line; on resume, lines past the checkpoint's step are dropped
(atomically) so a crash between a log line and the next checkpoint never duplicates records. A line
that does not parse (cut by a crash, or damaged) is skipped.
"""
from __future__ import annotations

import json
from pathlib import Path

from archsearch.utils.io import atomic_write_text


class JsonlLog:
    def __init__(self, path: Path):
        self.path = Path(path)

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            rec = _parse(line)
            if rec is not None and rec.get("step", -1) <= step:
                keep.append(line)
        atomic_write_text(self.path, "".join(k + "\n" for k in keep))

    def append(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [rec for rec in map(_parse, self.path.read_text().splitlines()) if rec is not None]


def _parse(line: str):
    """A record, or None for a line cut by a crash or otherwise not one record."""
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return rec if isinstance(rec, dict) else None
