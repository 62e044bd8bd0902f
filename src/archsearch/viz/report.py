"""`archsearch plot RUN`: every figure of a run directory, written under RUN/figures/."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
from omegaconf import OmegaConf

from archsearch.config import load_config
from archsearch.errors import ArchsearchError
from archsearch.spaces import create_space
from archsearch.spaces.darts.genotype import Genotype
from archsearch.spaces.darts.space import DartsSpace
from archsearch.utils.io import atomic_write_json, read_json
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


def _run_kind(run_dir: Path) -> str:
    """search, train or correlate: from run.json, or from config.yaml's keys for older runs."""
    if (run_dir / "run.json").is_file():
        rec = read_json(run_dir / "run.json", ArchsearchError)
        if isinstance(rec, dict) and isinstance(rec.get("kind"), str):
            return rec["kind"]
    keys = set(_config_keys(run_dir / "config.yaml"))
    return "train" if "model" in keys else "correlate" if "num_archs" in keys else "search"


def _config_keys(path: Path) -> list:
    try:
        data = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as e:  # noqa: BLE001 - OmegaConf/YAML raise several types
        raise ArchsearchError(f"cannot read {path}: {' '.join(str(e).split())}") from None
    return list(data) if isinstance(data, dict) else []


def _search_config(run_dir: Path):
    """A search run's config, or one line saying what the directory holds instead."""
    if not (run_dir / "config.yaml").is_file():
        raise ArchsearchError(f"{run_dir} is not a run directory (no config.yaml)")
    kind = _run_kind(run_dir)
    if kind == "train":
        raise ArchsearchError(f"{run_dir} is a training run; plot draws a search run's architecture weights (a "
                              "training run's curves are in its metrics.jsonl and tb/)")
    if kind == "correlate":
        raise ArchsearchError(f"{run_dir} is a correlation study; its figure is {run_dir / 'scatter.png'}")
    return load_config(run_dir / "config.yaml")


def plot_run(run_dir: Path, formats: Sequence[str] = FORMATS) -> tuple[list[Path], dict]:
    """Draw the anytime weights, their entropy and the derived cells; returns (files, entropy)."""
    run_dir = Path(run_dir)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ArchsearchError(f"figure formats must be among {', '.join(FORMATS)}, got {list(formats)}")
    cfg = _search_config(run_dir)
    space = create_space(cfg.space)
    if not isinstance(space, DartsSpace):
        hint = f": draw its architectures with `archsearch generate {run_dir} --flops T`" if (
            cfg.strategy.name == "sgnas") else ""
        raise ArchsearchError(f"{run_dir} searched the {cfg.space.name} space ({cfg.strategy.name}), not a DARTS cell "
                              f"space, and plot draws DARTS cell weights{hint}")
    if cfg.strategy.name == "random":
        raise ArchsearchError(f"{run_dir} is a random search, which keeps no architecture weights to plot (it samples "
                              "cells uniformly and scores them at the end; its result is genotype.json)")
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
