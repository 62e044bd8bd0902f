"""Run-directory logs: JSONL metrics and architecture history, mirrored to TensorBoard.

JSONL files are appended line by line; on resume, lines past the checkpoint's step are dropped
(atomically) so a crash between a log line and the next checkpoint never duplicates records.
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
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if rec.get("step", -1) <= step:
                keep.append(line)
        atomic_write_text(self.path, "".join(k + "\n" for k in keep))

    def append(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
