"""Reading arch_history.jsonl: the architecture weights recorded every `history_every` steps."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from archsearch.errors import ArchsearchError

ONE_HOT = 0.9  # an edge counts as nearly one-hot when its strongest op has this probability


def load_history(run_dir: Path) -> list[dict]:
    """The records of a run's arch_history.jsonl in step order (lines cut by a crash skipped)."""
    path = Path(run_dir) / "arch_history.jsonl"
    if not path.is_file():
        raise ArchsearchError(f"{path} not found: the run recorded no architecture weights yet")
    records = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(rec, dict) and "step" in rec:
            records.append(rec)
    if not records:
        raise ArchsearchError(f"{path} holds no architecture weights (this strategy records none)")
    return sorted(records, key=lambda r: r["step"])


def cell_kinds(record: dict) -> list[str]:
    """Keys of (edges, ops) weight matrices in a record (normal, reduce), not the edge weights."""
    return [k for k, v in record.items()
            if isinstance(v, list) and v and isinstance(v[0], list) and not k.endswith("_edges")]


def trajectories(records: list[dict], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs (T,), weights (T, edges, ops)) of one cell type."""
    x = np.array([r["epoch"] for r in records], dtype=float)
    w = np.array([r[kind] for r in records], dtype=float)
    return x, w


def edge_entropies(weights: np.ndarray) -> np.ndarray:
    """Mean over edges of each edge's operation entropy in nats; weights (..., edges, ops)."""
    p = np.clip(weights, 1e-12, None)
    return -(weights * np.log(p)).sum(-1).mean(-1)


def entropy_summary(records: list[dict]) -> dict:
    """Mean per-edge entropy at the first and last record, per cell type, with its maximum."""
    out = {}
    for kind in cell_kinds(records[0]):
        _, w = trajectories(records, kind)
        h = edge_entropies(w)
        out[kind] = {"start": float(h[0]), "end": float(h[-1]), "uniform": math.log(w.shape[-1]),
                     "start_step": records[0]["step"], "end_step": records[-1]["step"],
                     "max_prob_start": float(w[0].max(-1).mean()), "max_prob_end": float(w[-1].max(-1).mean()),
                     "one_hot_edges_start": int((w[0].max(-1) > ONE_HOT).sum()),
                     "one_hot_edges_end": int((w[-1].max(-1) > ONE_HOT).sum()), "edges": int(w.shape[1])}
    return out
