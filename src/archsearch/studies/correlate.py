"""`archsearch correlate`: do architecture rankings agree across objectives? (UnNAS, sample-based)

Cells are drawn from a space with the UnNAS distribution and kept when their evaluation network
costs within a window around a reference (docs/methods/unnas.md §3.1), or drawn per accuracy decile from an
external table. Each is trained from scratch under every listed objective and seed with the
training engine; a run scores the best epoch of its test metric (docs/methods/unnas.md §3.3), seeds are
averaged, and every pair of objectives gets Spearman's rho and Kendall's tau (scipy) and a
scatter plot.

out/
  run.json             the study's identity: resolved config and the table's content hash (engine/rundir.py)
  config.yaml          the study's resolved config
  archs/NNN.json       the sampled genotypes
  runs/NNN-<objective>-s<seed>/   one training run directory each (resumable; finished ones skipped),
                       trained through the study executors (studies/executors.py: local processes or Ray)
  jobs/*.json, logs/   each run's outcome (status, times, one-line error) and a failure's traceback
  scores.csv           one row per architecture, one column per objective (and the table's accuracy)
  correlations.json    rho, tau, p-values and n for every pair
  scatter.png / .svg   one panel per pair
"""
from __future__ import annotations

import csv
import itertools
import math
import random
from pathlib import Path

from scipy import stats

from archsearch.config import ObjectiveConfig, TrainConfig, load_config, retarget, to_dict, to_yaml
from archsearch.engine.rundir import RunDir
from archsearch.engine.runlog import JsonlLog
from archsearch.errors import ConfigError, DataError, GenotypeError
from archsearch.spaces import create_space
from archsearch.spaces.darts.cost import network_cost
from archsearch.spaces.darts.formats import parse_genotype
from archsearch.spaces.darts.genotype import Genotype
from archsearch.studies.config import CorrelateConfig
from archsearch.studies.executors import Job, create_executor
from archsearch.studies.runner import DONE, run_jobs
from archsearch.utils.io import atomic_write_json, atomic_write_text, file_hash, read_json

TABLE = "table"  # column name of the external accuracies


def in_window(g: Genotype, cfg: CorrelateConfig) -> bool:
    w = cfg.window
    cost = network_cost(g, w.init_channels, w.layers, w.num_classes, w.in_channels, w.image_size)
    return (w.low <= cost.params / w.reference_params <= w.high
            and w.low <= cost.macs / w.reference_mult_adds <= w.high)


def sample_archs(cfg: CorrelateConfig) -> list[Genotype]:
    """`num_archs` distinct cells inside the cost window, in draw order (seeded)."""
    space = create_space(cfg.space)
    rng = random.Random(cfg.seed)
    kept: list[Genotype] = []
    for _ in range(cfg.max_draws):
        g = space.sample(rng, unnas=True)
        if g not in kept and in_window(g, cfg):
            kept.append(g)
            if len(kept) == cfg.num_archs:
                return kept
    raise ConfigError(f"only {len(kept)} of {cfg.num_archs} cells fell in the cost window after "
                      f"{cfg.max_draws} draws; widen window.low/high or raise max_draws")


def read_table(cfg: CorrelateConfig) -> list[tuple[Genotype, float]]:
    """Rows of the external table, `per_decile` drawn (seeded) from each tenth of the accuracy range."""
    path = Path(cfg.table.path)
    try:
        with path.open(newline="") as f:
            rows = [(parse_genotype(r["genotype"], where=f"{path}:{i + 2}"), float(r["accuracy"]))
                    for i, r in enumerate(csv.DictReader(f))]
    except FileNotFoundError:
        raise DataError(f"architecture table not found: {path}") from None
    except (KeyError, ValueError, csv.Error) as e:
        raise DataError(f"{path}: expected CSV columns genotype (in any genotype format) and accuracy: {e}") from None
    bad = next((i for i, (_, acc) in enumerate(rows) if not math.isfinite(acc)), None)
    if bad is not None:
        raise DataError(f"{path}:{bad + 2}: the accuracy must be a finite number, got {rows[bad][1]}")
    rows.sort(key=lambda r: r[1])
    if not cfg.table.per_decile:
        return rows
    rng = random.Random(cfg.seed)
    picked = []
    for d in range(10):
        tenth = rows[len(rows) * d // 10: len(rows) * (d + 1) // 10]
        picked += rng.sample(tenth, min(cfg.table.per_decile, len(tenth)))
    return picked


def run_config(cfg: CorrelateConfig, arch_file: Path, objective: str, seed: int) -> TrainConfig:
    base = to_dict(cfg.train)
    base["objective"] = retarget(base["objective"], ObjectiveConfig, objective)
    extra = [f"model.genotype={arch_file}", f"seed={seed}", *cfg.objective_overrides.get(objective, [])]
    try:
        return load_config(None, extra, schema=TrainConfig, base=base)
    except ConfigError as e:
        raise ConfigError(f"objective_overrides.{objective}: {e}") from None


def correlations(scores: dict[str, dict[str, float]]) -> list[dict]:
    """Spearman and Kendall for every pair of columns over the architectures both have."""
    columns = sorted({c for row in scores.values() for c in row}, key=lambda c: (c != TABLE, c))
    out = []
    for x, y in itertools.combinations(columns, 2):
        ids = [a for a, row in scores.items() if x in row and y in row]
        if len(ids) < 3:
            continue
        xs, ys = [scores[a][x] for a in ids], [scores[a][y] for a in ids]
        rho, p_rho = stats.spearmanr(xs, ys)
        tau, p_tau = stats.kendalltau(xs, ys)
        out.append({"x": x, "y": y, "n": len(ids), "spearman_rho": float(rho), "spearman_p": float(p_rho),
                    "kendall_tau": float(tau), "kendall_p": float(p_tau)})
    return out


def plot(scores: dict[str, dict[str, float]], pairs: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not pairs:
        return
    fig, axes = plt.subplots(1, len(pairs), figsize=(4 * len(pairs), 4), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        ids = [a for a, row in scores.items() if pair["x"] in row and pair["y"] in row]
        ax.scatter([100 * scores[a][pair["x"]] for a in ids], [100 * scores[a][pair["y"]] for a in ids], s=18)
        ax.set_xlabel(f"{pair['x']} score (%)")
        ax.set_ylabel(f"{pair['y']} score (%)")
        ax.set_title(f"rho={pair['spearman_rho']:.2f}  tau={pair['kendall_tau']:.2f}  n={pair['n']}")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    for suffix in (".png", ".svg"):
        fig.savefig(out.with_suffix(suffix), dpi=120)
    plt.close(fig)


def identity(cfg: CorrelateConfig) -> dict:
    """The study's config as its run identity: where the runs execute is not part of it."""
    return {k: v for k, v in to_dict(cfg).items() if k != "executor"}


def run_correlate(cfg: CorrelateConfig, out: Path, progress=None) -> dict:
    out = Path(out)
    inputs = {}
    if cfg.table.path:
        table = read_table(cfg)
        inputs["architecture table (table.path)"] = file_hash(Path(cfg.table.path))
    run = RunDir(out, "correlate", identity(cfg), inputs, checkpoints=False)
    run.check()  # a study resumes only under its own config and table
    if cfg.table.path:
        archs, table_acc = [g for g, _ in table], [a for _, a in table]
    else:
        archs, table_acc = sample_archs(cfg), []
    jobs = {}  # (arch id, objective, seed) -> its training run
    for i in range(len(archs)):
        for objective in cfg.objectives:
            for seed in cfg.seeds:
                arch_file = out / "archs" / f"{i:03d}.json"
                name = f"{i:03d}-{objective}-s{seed}"
                jobs[(f"{i:03d}", objective, seed)] = Job(
                    f"train/{name}", "train", to_dict(run_config(cfg, arch_file, objective, seed)),
                    str(out / "runs" / name))
    executor = create_executor(cfg.executor)
    run.begin(to_yaml(cfg))
    for i, g in enumerate(archs):
        arch_file = out / "archs" / f"{i:03d}.json"
        if not arch_file.exists():
            g.save(arch_file)
        elif Genotype.load(arch_file) != g:
            raise GenotypeError(f"{arch_file} differs from the cell this study samples; use another --out")
    outcomes = run_jobs(list(jobs.values()), executor, out, progress, title=cfg.name,
                        describe=lambda job: f"best test_{cfg.score} {_best(Path(job.run_dir), cfg.score):.4f}")
    scores: dict[str, dict[str, float]] = {}
    for i in range(len(archs)):
        arch_id = f"{i:03d}"
        row = {TABLE: table_acc[i]} if table_acc else {}
        for objective in cfg.objectives:
            runs = [_best(Path(job.run_dir), cfg.score) for (a, o, _), job in jobs.items()
                    if a == arch_id and o == objective and outcomes[job.id]["status"] == DONE]
            if len(runs) == len(cfg.seeds):  # an architecture scores only once every seed has
                row[objective] = sum(runs) / len(runs)
        scores[arch_id] = row
    _write_scores(out, scores)
    pairs = correlations(scores)
    failed = [{"run": job.id, "status": outcomes[job.id]["status"], "error": outcomes[job.id]["error"]}
              for job in jobs.values() if outcomes[job.id]["status"] != DONE]
    result = {"architectures": len(archs), "objectives": cfg.objectives, "seeds": cfg.seeds,
              "score": f"best test_{cfg.score} over epochs, mean over seeds", "pairs": pairs, "failed": failed}
    atomic_write_json(out / "correlations.json", result)
    plot(scores, pairs, out / "scatter")
    return result


def _best(run_dir: Path, metric: str) -> float:
    """Best epoch's test metric of a run (the UnNAS score), read from its per-epoch log."""
    key = f"test_{metric}"
    values = [r.get(key) for r in JsonlLog(run_dir / "metrics.jsonl").read()]
    values = [v for v in values if v is not None]
    if not values:
        objective = read_json(run_dir / "summary.json").get("objective")
        raise ConfigError(f"{run_dir} has no {key} (objective {objective}); set score= to one of its metrics")
    return max(values)


def _write_scores(out: Path, scores: dict[str, dict[str, float]]) -> None:
    columns = sorted({c for row in scores.values() for c in row}, key=lambda c: (c != TABLE, c))
    lines = [",".join(["arch", *columns])]
    lines += [",".join([a, *(f"{row[c]:.6f}" if c in row else "" for c in columns)]) for a, row in scores.items()]
    atomic_write_text(out / "scores.csv", "\n".join(lines) + "\n")
