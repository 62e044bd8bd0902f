"""A finished search's supernet, reused: selection rules after the search, and architectures scored
with its inherited weights.

`archsearch derive RUN --selection RULE` applies any selection rule (strategies/selection.py) to
the search's final checkpoint, so rules are compared on the same supernet at no extra search
cost. `score_architectures` gives the one-shot score of given architectures on that supernet (BN
statistics recomputed on training batches for each, then the same validation batches): the
number a weight-sharing method ranks by, which a study correlates with the retrained results.

out/  (one directory per derivation or scoring; engine/rundir.py guards it)
  run.json, config.yaml   identity: the search's checkpoint hash and the options
  genotype.json           derive: the selected architecture
  scores.json             score: {architecture id: supernet score}
  summary.json            what was done, with timing (written last: its presence means finished)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from archsearch.config import SearchConfig, load_config, to_dict, to_yaml
from archsearch.engine.device import default_dtype, seed_everything
from archsearch.engine.rundir import RunDir
from archsearch.errors import CheckpointError, ConfigError
from archsearch.strategies.selection import Scorer, SelectionConfig
from archsearch.utils.io import atomic_write_json, file_hash, load_checkpoint, read_json


@dataclass
class FinalSearch:
    """A search rebuilt from its run directory at its final checkpoint."""

    run_dir: Path
    search: object  # engine.search.Search
    step: int
    checkpoint_hash: str

    def context(self):
        return self.search.context(max(self.step - 1, 0))


def load_final_search(run_dir: Path) -> FinalSearch:
    """The search of `run_dir` with its final weights, architecture and data positions (needs the data)."""
    from archsearch.engine.search import Search

    run_dir = Path(run_dir)
    for name in ("config.yaml", "checkpoint.pt", "summary.json"):
        if not (run_dir / name).is_file():
            what = "a finished search run" if name == "summary.json" else "a search run directory"
            raise ConfigError(f"{run_dir} is not {what} ({name} not found)")
    cfg: SearchConfig = load_config(run_dir / "config.yaml")
    ckpt_path = run_dir / "checkpoint.pt"
    ckpt = load_checkpoint(ckpt_path)
    if ckpt.get("kind") != "search":
        raise CheckpointError(f"{ckpt_path} is not a search checkpoint")
    seed_everything(cfg.seed)
    s = Search.build(cfg)
    step = s.load_state(ckpt)
    return FinalSearch(run_dir, s, step, file_hash(ckpt_path))


def _guard(out: Path, kind: str, fs_hash: str, options: dict) -> RunDir:
    run = RunDir(out, kind, {"search_checkpoint": fs_hash, **options}, checkpoints=False)
    run.check()
    return run


def derive(run_dir: Path, cfg: SelectionConfig, out: Path) -> dict:
    """Apply selection rule `cfg` to the final supernet of search `run_dir`; writes `out`."""
    t0 = time.time()
    fs = load_final_search(run_dir)
    s = fs.search
    run = _guard(out, "derive", fs.checkpoint_hash, {"selection": to_dict(cfg)})
    if (Path(out) / "summary.json").is_file():  # a finished derivation of the same rule and options
        return read_json(Path(out) / "summary.json")
    run.begin(to_yaml(cfg))
    with default_dtype(s.cfg.precision), s.autocast():
        arch, record = s.strategy.select(fs.context(), cfg)
    d = s.space.arch_to_dict(arch)
    atomic_write_json(Path(out) / "genotype.json", d)
    summary = {"search": str(Path(run_dir).resolve()), "strategy": s.cfg.strategy.name, "rule": str(cfg.rule),
               "architecture": d, "describe": s.space.describe(arch), "eval_network": s.space.cost(arch, s.data.info),
               "record": record, "seconds": round(time.time() - t0, 2)}
    atomic_write_json(Path(out) / "summary.json", summary)
    return summary


def score_architectures(run_dir: Path, archs: dict[str, dict], out: Optional[Path], batches: int = 8,
                        bn_batches: int = 4) -> dict[str, float]:
    """{id: one-shot score} of architectures (JSON, of the search's space) on the final supernet of
    `run_dir`: BN statistics recomputed on `bn_batches` training batches for each, then the main
    metric on the same `batches` validation batches. Writes `out` when given."""
    t0 = time.time()
    fs = load_final_search(run_dir)
    s = fs.search
    parsed = {}
    for key, d in archs.items():
        try:
            parsed[key] = s.space.arch_from_dict(d)
        except Exception as e:  # noqa: BLE001 (one line naming the architecture)
            raise ConfigError(f"architecture {key}: not an architecture of {run_dir}'s space: {e}") from None
    run = None
    if out is not None:
        run = _guard(out, "score", fs.checkpoint_hash, {"archs": archs, "batches": batches, "bn_batches": bn_batches})
        run.begin(to_yaml(SelectionConfig(batches=batches, bn="recompute", bn_batches=bn_batches)))
    ctx = fs.context()
    with default_dtype(s.cfg.precision), s.autocast():
        val = [ctx.next_val() for _ in range(batches)]
        train = [ctx.next_train() for _ in range(bn_batches)]
        scorer = Scorer(s.model, s.objective, val, train, "recompute")
        with torch.no_grad():
            scores = {key: scorer(s.space.one_hot(a)) for key, a in parsed.items()}
    if out is not None:
        atomic_write_json(Path(out) / "scores.json", scores)
        atomic_write_json(Path(out) / "summary.json", {
            "search": str(Path(run_dir).resolve()), "architectures": len(scores), "batches": batches,
            "bn_batches": bn_batches, "metric": s.objective.main_metric, "seconds": round(time.time() - t0, 2)})
    return scores
