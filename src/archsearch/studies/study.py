"""`archsearch study`: searches x seeds, the found architectures retrained, random ones beside them.

A NAS result means something only next to architectures of the same space trained with the same
recipe (Li & Talwalkar 2019; Yang et al. 2020): every search method runs once per search seed,
every architecture it finds is trained once per training seed, and `baselines.random` cells drawn
uniformly from the searched space (plus any published genotypes) are trained with the same recipe
and seeds. Everything is checked before the first run starts; runs execute through an executor
(studies/executors.py) and the study resumes where it stopped.

out/
  run.json, config.yaml   the study's identity (engine/rundir.py; the executor is not part of it)
  archs/random-NNN.json   the drawn architectures
  runs/search/<label>-s<seed>/      one search run directory per method and seed
  runs/train/<arch>-t<seed>/        one training run directory per architecture and training seed
  jobs/*.json, logs/*.txt           each run's outcome (status, times, error) and a failure's traceback
  results.csv             one row per run
  summary.json            per-method statistics against the random architectures, the noise floor,
                          intervals, power, paired tests on the same test samples and warnings
                          (studies/stats.py)
  report.md, strip.png/svg, params.png/svg
"""
from __future__ import annotations

import csv
import io
import json
import math
import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from scipy import stats

from archsearch.config import SearchConfig, TrainConfig, load_config, to_dict, to_yaml
from archsearch.engine.rundir import RunDir
from archsearch.engine.runinfo import bind_space
from archsearch.engine.runlog import JsonlLog
from archsearch.errors import ArchsearchError, ConfigError, GenotypeError
from archsearch.presets import resolve_config
from archsearch.studies import stats as st
from archsearch.studies.config import StudyConfig
from archsearch.studies.executors import Job, create_executor
from archsearch.studies.runner import DONE, recorded_outcome, run_jobs
from archsearch.utils.correct import read_correct
from archsearch.utils.io import atomic_write_json, atomic_write_text, read_json

RANDOM = "random"


@dataclass
class Arch:
    """An architecture the study trains: found by a search, drawn at random, or published."""

    id: str
    role: str  # search | random | published
    method: str
    ref: str  # what model.genotype receives
    search_seed: Optional[int] = None
    after: tuple[str, ...] = ()
    search: Optional[str] = None  # the job id of the search it came from
    selection: str = ""  # the selection rule that chose it ("" for the search's own result)


@dataclass
class Plan:
    cfg: StudyConfig
    out: Path
    metric: str
    searches: list[tuple[str, int, SearchConfig]]
    archs: list[Arch]
    drawn: dict[str, dict]  # random architecture id -> its JSON
    jobs: list[Job]


def _load(preset: str, overrides: list[str], schema, where: str):
    try:
        return load_config(resolve_config(preset), overrides, schema=schema, overrides_from="its overrides")
    except ArchsearchError as e:
        raise ConfigError(f"{where}: {e}") from None


def plan_study(cfg: StudyConfig, out: Path) -> Plan:
    """Every run of the study with its resolved config, checked; nothing is written."""
    out = Path(out).resolve()
    for entry in cfg.searches:
        if any(o.split("=", 1)[0] == "seed" for o in entry.overrides):
            raise ConfigError(f"search {entry.method()}: do not override seed; search_seeds sets it")
    if any(o.split("=", 1)[0] in ("seed", "model.genotype") for o in cfg.retrain.overrides):
        raise ConfigError("retrain.overrides: seed and model.genotype are set by the study")
    searches = [(e.method(), seed, _load(e.preset, [*e.overrides, f"seed={seed}"], SearchConfig,
                                        f"search {e.method()}"))
                for e in cfg.searches for seed in cfg.search_seeds]
    recipe = _load(cfg.retrain.preset, cfg.retrain.overrides, TrainConfig, f"retrain.preset {cfg.retrain.preset}")
    family = _family(recipe)
    spaces = {}
    for label, _, scfg in searches:
        if label not in spaces:
            spaces[label] = _bound_space(scfg)
            _check_takes(family, cfg.retrain.preset, recipe, spaces[label], label, scfg)
    for name in cfg.baselines.published:
        try:
            family.resolve(name)
        except ArchsearchError as e:
            raise ConfigError(f"baselines.published: {e}") from None
    from archsearch.objectives import OBJECTIVES

    metric = cfg.metric or OBJECTIVES.get(recipe.objective.name).main_metric

    archs, oneshot_jobs = _found(cfg, out, searches)
    space_of = cfg.baselines.space_of or cfg.searches[0].method()
    drawn = _draw(spaces[space_of], cfg.baselines.random, cfg.baselines.seed)
    archs += [Arch(a, "random", RANDOM, str(out / "archs" / f"{a}.json")) for a in drawn]
    archs += [Arch(name, "published", name, name) for name in cfg.baselines.published]

    jobs = [Job(f"search/{label}-s{seed}", "search", to_dict(scfg), str(out / "runs" / "search" / f"{label}-s{seed}"))
            for label, seed, scfg in searches]
    jobs += oneshot_jobs
    if cfg.ranking.enabled and drawn:
        jobs += _score_jobs(cfg, out, searches, archs, drawn)
    for arch in archs:
        for t in cfg.retrain.seeds:
            tcfg = _load(cfg.retrain.preset, [*cfg.retrain.overrides, f"model.genotype={json.dumps(arch.ref)}",
                                              f"seed={t}"], TrainConfig, f"retrain.preset {cfg.retrain.preset}")
            jobs.append(Job(f"train/{arch.id}-t{t}", "train", to_dict(tcfg), str(out / "runs" / "train" /
                                                                                 f"{arch.id}-t{t}"), arch.after))
    return Plan(cfg, out, metric, searches, archs, drawn, _schedule(jobs))


def _schedule(jobs: list[Job]) -> list[Job]:
    """The order ready jobs start in: searches; then the trainings that need no derivation, random and
    found ones alternating, so that a study stopped early already compares both sides; the supernet
    scorings; the derivations; their trainings."""
    kinds = {j.id: j.kind for j in jobs}
    seen = {"random": 0, "found": 0}

    def key(job: Job) -> tuple:
        if job.kind == "search":
            return (0, 0)
        if job.kind == "train" and all(kinds[d] == "search" for d in job.after):
            side = "found" if job.after else "random"
            seen[side] += 1
            return (1, 2 * seen[side] + (side == "found"))
        return ({"score": 2, "derive": 3}.get(job.kind, 4), 0)

    return sorted(jobs, key=key)  # stable: plan order within a phase


def own_rule(scfg: SearchConfig) -> Optional[str]:
    """The selection rule a search applies itself (strategy.selection), or None for a strategy that has
    no supernet weights to select from (SGNAS)."""
    sel = getattr(scfg.strategy, "selection", None)
    return None if sel is None else str(sel.rule)


def _found(cfg: StudyConfig, out: Path, searches) -> tuple[list[Arch], list[Job]]:
    """The architectures the searches find: each search's own result, and one per further selection
    rule its entry names, derived from its final supernet by a `derive` job (engine/oneshot.py)."""
    entries = {e.method(): e for e in cfg.searches}
    archs, jobs = [], []
    for label, seed, scfg in searches:
        search_id, run = f"search/{label}-s{seed}", out / "runs" / "search" / f"{label}-s{seed}"
        own = own_rule(scfg)
        rules = list(entries[label].selections) or [own or ""]
        for rule in rules:
            method = label if rules == [own or ""] else f"{label}+{rule}"
            if rule == (own or ""):
                archs.append(Arch(f"{method}-s{seed}", "search", method, str(run), seed, (search_id,), search_id))
                continue
            if own is None:
                raise ConfigError(f"search {label}: strategy {scfg.strategy.name!r} has no architecture weights to "
                                  f"select from; remove its selections")
            did = f"{method}-s{seed}"
            sel = {**to_dict(cfg.selection), "rule": rule}
            jobs.append(Job(f"derive/{did}", "derive", {"search": str(run), "selection": sel},
                            str(out / "runs" / "derive" / did), (search_id,)))
            archs.append(Arch(did, "search", method, str(out / "runs" / "derive" / did / "genotype.json"), seed,
                              (f"derive/{did}",), search_id, rule))
    return archs, jobs


def _score_jobs(cfg: StudyConfig, out: Path, searches, archs: list[Arch], drawn: dict) -> list[Job]:
    """Per search with a supernet: the random architectures and the search's own found ones scored on
    its final supernet (the one-shot ranking diagnostic)."""
    jobs = []
    for label, seed, scfg in searches:
        search_id = f"search/{label}-s{seed}"
        if own_rule(scfg) is None:
            continue
        mine = [a for a in archs if a.search == search_id]
        paths = {a: str(out / "archs" / f"{a}.json") for a in drawn}
        paths.update({a.id: a.ref if a.ref.endswith(".json") else str(Path(a.ref) / "genotype.json") for a in mine})
        after = tuple(dict.fromkeys([search_id, *(d for a in mine for d in a.after)]))
        jobs.append(Job(f"score/{label}-s{seed}", "score", {"search": str(out / "runs" / "search" / f"{label}-s{seed}"),
                        "archs": paths, "batches": cfg.ranking.batches, "bn_batches": cfg.ranking.bn_batches},
                        str(out / "runs" / "score" / f"{label}-s{seed}"), after))
    return jobs


def _family(recipe: TrainConfig):
    from archsearch.models import create_family

    return create_family(recipe.model.name)


def _bound_space(scfg: SearchConfig):
    from archsearch.data import dataset_info, static_dataset_info

    return bind_space(scfg, static_dataset_info(scfg.data) or dataset_info(scfg.data))


def _check_takes(family, preset: str, recipe: TrainConfig, space, label: str, scfg: SearchConfig) -> None:
    """The retraining model must read what the search writes: a drawn architecture of the space,
    round-tripped through the space's JSON into the model family's."""
    sample = space.sample(random.Random(0))
    try:
        family.arch_from_dict(json.loads(json.dumps(space.arch_to_dict(sample))))
    except (GenotypeError, ConfigError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"retrain.preset {preset}: model {recipe.model.name!r} cannot take "
                          f"the architectures of search {label} (space {scfg.space.name!r}): {e}") from None


def _draw(space, n: int, seed: int) -> dict[str, dict]:
    """`n` distinct architectures drawn uniformly from the space (seeded), by id."""
    rng = random.Random(seed)
    seen: dict[str, dict] = {}
    for _ in range(1000 * max(n, 1)):
        if len(seen) == n:
            break
        d = space.arch_to_dict(space.sample(rng))
        key = json.dumps(d, sort_keys=True)
        if key not in {json.dumps(v, sort_keys=True) for v in seen.values()}:
            seen[f"random-{len(seen):03d}"] = d
    if len(seen) < n:
        raise ConfigError(f"baselines.random={n}: the space holds only {len(seen)} distinct architectures found "
                          "in the draws")
    return seen


# -- running -----------------------------------------------------------------------------------------
def run_study(cfg: StudyConfig, out: Path, progress: Optional[bool] = None, report_only: bool = False) -> dict:
    """Plan, check, run what is unfinished, write results.csv, summary.json and report.md.
    `report_only`: run nothing; report the runs finished so far (a long study looked at midway)."""
    plan = plan_study(cfg, out)
    identity = {k: v for k, v in to_dict(cfg).items() if k != "executor"}  # where runs execute is no result
    run = RunDir(plan.out, "study", identity, checkpoints=False)
    run.check()
    if report_only:
        if not (plan.out / "run.json").is_file():
            raise ConfigError(f"{plan.out} holds no study to report on; run it first")
        outcomes = {j.id: rec for j in plan.jobs if (rec := recorded_outcome(plan.out, j)) is not None}
        return _report(plan, outcomes)
    executor = create_executor(cfg.executor)  # a Ray address that cannot be joined fails here, before a write
    run.begin(to_yaml(cfg))
    for arch_id, d in plan.drawn.items():
        path = plan.out / "archs" / f"{arch_id}.json"
        if not path.is_file():
            atomic_write_json(path, d)
        elif read_json(path) != d:
            raise GenotypeError(f"{path} differs from the architecture this study draws; use another --out")
    outcomes = run_jobs(plan.jobs, executor, plan.out, progress, describe=lambda j: _describe(j, plan.metric),
                        title=cfg.name)
    return _report(plan, outcomes)


def _report(plan: Plan, outcomes: dict[str, dict]) -> dict:
    """results.csv, summary.json (statistics, ranking diagnostics) and report.md from the outcomes."""
    from archsearch.studies.ranking import ranking
    from archsearch.studies.report import write_report

    rows = results_rows(plan, outcomes, {j.id: j for j in plan.jobs})
    write_results(plan, rows)
    summary = summarize(plan, rows)
    summary["ranking"] = ranking(plan, arch_scores(rows))
    for name, rec in summary["methods"].items():  # labels cannot hold '+': LABEL+RULE splits safely
        tau = summary["ranking"]["methods"].get(name.split("+")[0], {}).get("mean_tau")
        if rec["role"] == "search" and tau is not None:
            rec["supernet_tau"] = tau
    atomic_write_json(plan.out / "summary.json", summary)
    write_report(plan, rows, summary)
    return summary


def _describe(job: Job, metric: str) -> str:
    summary = read_json(Path(job.run_dir) / "summary.json")
    if job.kind in ("search", "derive"):
        cost = summary.get("eval_network", {})
        return f"{cost.get('params_M', float('nan')):.3f}M params at the space's evaluation size"
    if job.kind == "score":
        return f"{summary.get('architectures', 0)} architectures scored on the supernet"
    value = summary.get("final", {}).get(f"test_{metric}")
    return f"test_{metric} {value:.4f}" if value is not None else f"no test_{metric}"


# -- results -----------------------------------------------------------------------------------------
COLUMNS = ["role", "method", "arch", "search_seed", "train_seed", "status", "final", "best", "score",
           "params_M", "mult_adds_M", "test_samples", "num_classes", "correct_file", "wall_h", "cpu_h", "gpu_h",
           "run", "error"]


def _hours(seconds) -> Optional[float]:
    return None if seconds is None else round(seconds / 3600, 5)


def results_rows(plan: Plan, outcomes: dict[str, dict], by_id: dict[str, Job]) -> list[dict]:
    """One row per run, in plan order."""
    rows = []
    for label, seed, _ in plan.searches:
        job = by_id[f"search/{label}-s{seed}"]
        rows.append(_row(plan, job, outcomes.get(job.id), "search", label, f"{label}-s{seed}", seed, None))
    for arch in plan.archs:
        for t in plan.cfg.retrain.seeds:
            job = by_id[f"train/{arch.id}-t{t}"]
            role = "retrain" if arch.role == "search" else arch.role
            rows.append(_row(plan, job, outcomes.get(job.id), role, arch.method, arch.id, arch.search_seed, t))
    return rows


def _row(plan: Plan, job: Job, outcome: Optional[dict], role, method, arch, search_seed, train_seed) -> dict:
    outcome = outcome or {"status": "not run", "error": "", "wall_s": None, "cpu_s": None, "gpu_s": None}
    row = {"role": role, "method": method, "arch": arch, "search_seed": search_seed, "train_seed": train_seed,
           "status": outcome["status"], "final": None, "best": None, "score": None, "params_M": None,
           "mult_adds_M": None, "test_samples": None, "num_classes": None, "correct_file": None,
           "wall_h": _hours(outcome["wall_s"]), "cpu_h": _hours(outcome["cpu_s"]),
           "gpu_h": _hours(outcome["gpu_s"]), "run": str(Path(job.run_dir).relative_to(plan.out)),
           "error": outcome["error"]}
    if outcome["status"] != DONE:
        return row
    summary = read_json(Path(job.run_dir) / "summary.json")
    if job.kind == "search":
        return row
    key = f"test_{plan.metric}"
    row["params_M"] = round(summary["params"] / 1e6, 6) if "params" in summary else None
    row["mult_adds_M"] = summary.get("mult_adds_M")
    row["final"] = summary.get("final", {}).get(key)
    row["num_classes"] = summary.get("num_classes")
    correct = summary.get("test_correct")
    if correct and (Path(job.run_dir) / correct["file"]).is_file():
        row["test_samples"] = correct["samples"]
        row["correct_file"] = str((Path(job.run_dir) / correct["file"]).relative_to(plan.out))
    values = [r[key] for r in JsonlLog(Path(job.run_dir) / "metrics.jsonl").read() if r.get(key) is not None]
    row["best"] = max(values) if values else None
    row["score"] = row[plan.cfg.score.value]
    if row["score"] is None:
        row["error"] = f"the run reports no {key}"
    return row


def write_results(plan: Plan, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r[k] is None else r[k] for k in COLUMNS})
    atomic_write_text(plan.out / "results.csv", buf.getvalue())


def arch_scores(rows: list[dict]) -> dict[str, dict[str, float]]:
    """method -> arch -> score averaged over its training seeds (trainings that reported one)."""
    per: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        if r["role"] != "search" and r["score"] is not None:
            per.setdefault(r["method"], {}).setdefault(r["arch"], []).append(r["score"])
    return {m: {a: statistics.fmean(v) for a, v in archs.items()} for m, archs in per.items()}


def compare(method: list[float], random_scores: list[float]) -> dict:
    """Where a method's architectures stand among the random ones: percentile of their mean, relative
    improvement over the random mean RI = 100 (m - r) / r, and a one-sided Mann-Whitney U test
    (method > random) where both sides have at least two architectures."""
    m, r = statistics.fmean(method), statistics.fmean(random_scores)
    out = {"percentile_among_random": float(stats.percentileofscore(random_scores, m, kind="mean")),
           "ri_percent": 100 * (m - r) / r if r else None, "rank_test": None}
    if len(method) >= 2 and len(random_scores) >= 2:
        u = stats.mannwhitneyu(method, random_scores, alternative="greater")
        out["rank_test"] = {"test": "Mann-Whitney U, one-sided (method > random)", "u": float(u.statistic),
                            "p": float(u.pvalue), "n_method": len(method), "n_random": len(random_scores)}
    return out


def _mean_std(values: list[float]) -> tuple[Optional[float], Optional[float]]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(plan: Plan, rows: list[dict]) -> dict:
    cfg = plan.cfg
    scores = arch_scores(rows)
    random_scores = list(scores.get(RANDOM, {}).values())
    searched = {a.method: a for a in plan.archs if a.role == "search"}  # found methods: LABEL or LABEL+RULE
    methods = list(searched) + [RANDOM] + list(cfg.baselines.published)
    out = {"metric": f"test_{plan.metric}", "score": cfg.score.value, "search_seeds": cfg.search_seeds,
           "train_seeds": cfg.retrain.seeds, "methods": {}}
    for m in methods:
        runs = [r["score"] for r in rows if r["method"] == m and r["role"] != "search" and r["score"] is not None]
        archs = scores.get(m, {})
        mean, std = _mean_std(runs)
        rec: dict = {"role": "search" if m in searched else "random" if m == RANDOM
                     else "published", "runs": len(runs), "architectures": len(archs), "mean": mean, "std": std,
                     "params_M": _mean([r["params_M"] for r in rows if r["method"] == m and r["role"] != "search"])}
        if archs and rec["role"] == "search":
            best = max(archs, key=archs.get)
            rec["best_search"] = {"arch": best, "score": archs[best]}
            rec["selection"] = searched[m].selection or "the search's own"
            label = searched[m].search.split("/", 1)[1].rsplit("-s", 1)[0]
            costs = [r for r in rows if r["method"] == label and r["role"] == "search" and r["status"] == DONE]
            rec["search_cost"] = {k: _mean([r[k] for r in costs]) for k in ("wall_h", "cpu_h", "gpu_h")}
            rec["search_cost"]["gpu_days"] = (None if rec["search_cost"]["gpu_h"] is None
                                              else rec["search_cost"]["gpu_h"] / 24)
        if archs and random_scores and m != RANDOM:
            rec["vs_random"] = compare(list(archs.values()), random_scores)
        out["methods"][m] = rec
    out["runs"] = {s: sum(r["status"] == s for r in rows) for s in sorted({r["status"] for r in rows})}
    out["failed"] = [{"run": r["run"], "status": r["status"], "error": r["error"]} for r in rows
                     if r["status"] != DONE]
    _add_statistics(plan, rows, scores, out)
    return out


def _add_statistics(plan: Plan, rows: list[dict], scores: dict[str, dict[str, float]], out: dict) -> None:
    """The noise floor, warnings, and per compared method: intervals, Welch p, the minimum
    detectable effect, the paired comparison on the same test samples and a verdict (stats.py)."""
    trained = [r for r in rows if r["role"] != "search" and r["score"] is not None]
    random_scores = list(scores.get(RANDOM, {}).values())
    counts = [r["test_samples"] for r in trained if r["test_samples"]]
    samples = min(counts) if counts else None
    num_classes = next((r["num_classes"] for r in trained if r["num_classes"]), None)
    seeds: dict[tuple[str, str], list[float]] = {}
    for r in trained:
        seeds.setdefault((r["method"], r["arch"]), []).append(r["score"])
    spread = statistics.stdev(random_scores) if len(random_scores) >= 2 else None
    random_mean = statistics.fmean(random_scores) if random_scores else None
    out["noise"] = {
        "test_samples": samples, "num_classes": num_classes,
        "chance": st.chance_level(plan.metric, num_classes),
        "binomial_se": st.binomial_se(random_mean, samples) if samples and random_mean is not None else None,
        "seed_std": st.pooled_seed_std(list(seeds.values())), "random_std": spread,
        "bootstrap": {"resamples": st.RESAMPLES, "level": st.LEVEL, "seed": 0},
        "power": {"alpha_one_sided": st.ALPHA, "power": st.POWER,
                  "mde": "(z_0.95 + z_0.80) * random_std * sqrt(1/n_method + 1/n_random)"}}
    correct = _correct_by_arch(plan, trained)
    for name, rec in out["methods"].items():
        archs = list(scores.get(name, {}).values())
        if name == RANDOM and archs:
            rec["interval"] = {"mean": st.bootstrap_mean(archs)}
        vs = rec.get("vs_random")
        if not vs:
            continue
        vs["difference"] = statistics.fmean(archs) - random_mean
        vs["welch_p"] = st.welch_p(archs, random_scores)
        vs["interval"] = st.bootstrap(archs, random_scores)
        vs["mde"] = None if spread is None else st.min_detectable_effect(spread, len(archs), len(random_scores))
        vs["paired"] = (st.paired_difference(correct[name], correct[RANDOM])
                        if name in correct and RANDOM in correct else None)
        test = vs["rank_test"]
        rec["verdict"] = st.verdict(vs["difference"], test["p"] if test else None, vs["percentile_among_random"],
                                    vs["mde"])
    unfinished: dict[str, int] = {}
    for r in rows:
        if r["status"] != DONE:
            unfinished[r["status"]] = unfinished.get(r["status"], 0) + 1
    means = {name: rec["mean"] for name, rec in out["methods"].items() if rec["mean"] is not None}
    out["warnings"] = st.study_warnings(len(plan.cfg.search_seeds), len(random_scores), means,
                                        out["noise"]["chance"], samples, unfinished)


def _correct_by_arch(plan: Plan, trained: list[dict]) -> dict[str, np.ndarray]:
    """method -> (architectures x test samples) correctness, averaged over training seeds; only
    where the files score the study's metric at the final epoch (what `score: final` compares) and
    every file holds the same samples. A method with a run lacking its file is left out."""
    if plan.cfg.score.value != "final":
        return {}
    per: dict[str, dict[str, list[np.ndarray]]] = {}
    missing = set()
    for r in trained:
        if not r["correct_file"]:
            missing.add(r["method"])
            continue
        try:
            values, metric = read_correct(plan.out / r["correct_file"])
        except ArchsearchError:
            missing.add(r["method"])
            continue
        if metric != plan.metric:
            return {}
        per.setdefault(r["method"], {}).setdefault(r["arch"], []).append(values)
    if len({len(v) for archs in per.values() for runs in archs.values() for v in runs}) > 1:
        return {}
    return {m: np.stack([np.mean(runs, axis=0) for runs in archs.values()]) for m, archs in per.items()
            if m not in missing}


def _mean(values) -> Optional[float]:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.fmean(values) if values else None
