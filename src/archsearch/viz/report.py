"""`archsearch plot RUN`: every figure of a run directory, written under RUN/figures/."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt

from archsearch.config import load_config
from archsearch.errors import ArchsearchError
from archsearch.spaces import create_space
from archsearch.spaces.darts.genotype import Genotype
from archsearch.utils.io import atomic_write_json
from archsearch.viz.cells import plot_genotype
from archsearch.viz.history import cell_kinds, entropy_summary, load_history, trajectories
from archsearch.viz.weights import plot_anytime_weights, plot_entropy

FORMATS = ("png", "svg", "pdf")
KIND_TITLES = {"normal": "normal cell", "reduce": "reduction cell"}


def _save(fig, stem: Path, formats: Sequence[str]) -> list[Path]:
    paths = []
    for fmt in formats:
        path = stem.with_suffix("." + fmt)
        fig.savefig(path, dpi=150 if fmt == "png" else None, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _kept_edges(genotype: Genotype, kind: str) -> set[tuple[int, int]]:
    return {(k // 2, src) for k, (_, src) in enumerate(getattr(genotype, kind))}


def plot_run(run_dir: Path, formats: Sequence[str] = FORMATS) -> tuple[list[Path], dict]:
    """Draw the anytime weights, their entropy and the derived cells; returns (files, entropy)."""
    run_dir = Path(run_dir)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ArchsearchError(f"figure formats must be among {', '.join(FORMATS)}, got {list(formats)}")
    if not (run_dir / "config.yaml").is_file():
        raise ArchsearchError(f"{run_dir} is not a run directory (no config.yaml)")
    cfg = load_config(run_dir / "config.yaml")
    space = create_space(cfg.space)
    records = load_history(run_dir)
    genotype = Genotype.load(run_dir / "genotype.json") if (run_dir / "genotype.json").is_file() else None
    out_dir = run_dir / "figures"
    out_dir.mkdir(exist_ok=True)
    name = f"{cfg.strategy.name} on {cfg.data.name} ({cfg.space.name})"
    files: list[Path] = []
    series = {}
    for kind in cell_kinds(records[0]):
        x, w = trajectories(records, kind)
        series[kind] = (x, w)
        op_names = getattr(space, "op_names", {}).get(kind) or [[f"op {k}" for k in range(w.shape[2])]] * w.shape[1]
        kept = _kept_edges(genotype, kind) if genotype is not None else None
        fig = plot_anytime_weights(x, w, op_names, space.nodes,
                                   f"Anytime architecture weights, {KIND_TITLES.get(kind, kind)}: {name}", kept)
        files += _save(fig, out_dir / f"arch_weights_{kind}", formats)
    entropy = entropy_summary(records)
    uniform = max(e["uniform"] for e in entropy.values())
    files += _save(plot_entropy(series, uniform, f"Architecture entropy: {name}"), out_dir / "entropy", formats)
    if genotype is not None:
        files += _save(plot_genotype(genotype, f"Derived cells: {name}"), out_dir / "cells", formats)
    atomic_write_json(out_dir / "entropy.json", entropy)
    files.append(out_dir / "entropy.json")
    return files, entropy
