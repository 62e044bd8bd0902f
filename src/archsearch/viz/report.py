"""`archsearch plot RUN`: every figure of a run directory, written under RUN/figures/."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
from omegaconf import OmegaConf

from archsearch.config import load_config
from archsearch.engine.runinfo import bind_space, run_info
from archsearch.errors import ArchsearchError
from archsearch.spaces import create_space
from archsearch.utils.io import atomic_write_json, load_checkpoint, read_json
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


def _kept_edges(arch, kind: str) -> set[tuple[int, int]] | None:
    """(node, source) of the edges a DARTS genotype keeps, to mark them in the anytime panels."""
    cell = getattr(arch, kind, None)
    return {(k // 2, src) for k, (_, src) in enumerate(cell)} if cell is not None else None


def _space_of(run_dir: Path, cfg):
    """The run's space, bound to its input as the search bound it (the checkpoint records the input)."""
    space = create_space(cfg.space)
    ckpt = run_dir / "checkpoint.pt"
    if ckpt.is_file():
        space = bind_space(cfg, run_info(cfg, load_checkpoint(ckpt)))
    return space


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
    """Draw the anytime weights and their entropy (spaces with edge x op weights) and the derived
    architecture; returns (files, entropy)."""
    run_dir = Path(run_dir)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ArchsearchError(f"figure formats must be among {', '.join(FORMATS)}, got {list(formats)}")
    cfg = _search_config(run_dir)
    space = _space_of(run_dir, cfg)
    arch_file = run_dir / "genotype.json"
    arch = space.arch_from_dict(read_json(arch_file, ArchsearchError)) if arch_file.is_file() else None
    name = f"{cfg.strategy.name} on {cfg.data.name} ({cfg.space.name})"
    records = load_history(run_dir) if (run_dir / "arch_history.jsonl").is_file() else []
    panels = {k: space.weight_panels(k) for k in (cell_kinds(records[0]) if records else [])}
    panels = {k: v for k, v in panels.items() if v is not None}
    if not panels and arch is None:
        raise ArchsearchError(f"{run_dir} has neither an architecture history nor a derived architecture yet")
    out_dir = run_dir / "figures"
    out_dir.mkdir(exist_ok=True)
    files: list[Path] = []
    series, entropy = {}, {}
    for kind, (op_names, nodes) in panels.items():
        x, w = trajectories(records, kind)
        series[kind] = (x, w)
        kept = _kept_edges(arch, kind) if arch is not None else None
        fig = plot_anytime_weights(x, w, op_names, nodes,
                                   f"Anytime architecture weights, {KIND_TITLES.get(kind, kind)}: {name}", kept)
        files += _save(fig, out_dir / f"arch_weights_{kind}", formats)
    if series:
        entropy = {k: v for k, v in entropy_summary(records).items() if k in series}
        uniform = max(e["uniform"] for e in entropy.values())
        files += _save(plot_entropy(series, uniform, f"Architecture entropy: {name}"), out_dir / "entropy", formats)
        atomic_write_json(out_dir / "entropy.json", entropy)
        files.append(out_dir / "entropy.json")
    if arch is not None:
        files += _save(space.plot_architecture(arch, f"Derived architecture: {name}"), out_dir / "cells", formats)
    return files, entropy
