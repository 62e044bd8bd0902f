"""Per-sample correctness files: one bit per test sample, in test-set order, so that a study can
compare networks on the very same samples instead of only their accuracies (studies/stats.py)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from archsearch.errors import DataError
from archsearch.utils.io import atomic_write_npz

CORRECT_FILE = "test_correct.npz"


def write_correct(path: Path, correct: np.ndarray, metric: str) -> None:
    """`correct` (N,) bool, packed eight samples a byte."""
    correct = np.asarray(correct, dtype=bool)
    atomic_write_npz(path, bits=np.packbits(correct), count=np.array(len(correct)), metric=np.array(metric))


def read_correct(path: Path) -> tuple[np.ndarray, str]:
    """The (N,) bool correctness and the metric it scores; a damaged file is a DataError."""
    try:
        with np.load(path, allow_pickle=False) as f:
            bits, count, metric = f["bits"], int(f["count"]), str(f["metric"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read {path}: {type(e).__name__}: {e}") from None
    if bits.dtype != np.uint8 or bits.size != (count + 7) // 8:
        raise DataError(f"{path} does not hold the {count} samples it records")
    return np.unpackbits(bits, count=count).astype(bool), metric
