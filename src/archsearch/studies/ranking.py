"""One-shot ranking diagnostics of a study: can a search's supernet rank architectures at all?

Every search with a supernet scores the study's random architectures and its own found ones with
its inherited weights (engine/oneshot.py, a `score` job); here those scores meet the retrained
ones. Per search, Kendall's tau and Spearman's rho between supernet score and retrained score
(averaged over training seeds); per method, their mean over search seeds. A tau near zero says the
supernet's preferences carry no information about stand-alone accuracy at this budget, whatever
the selection rule (Yu et al., "Evaluating the search phase of NAS", ICLR 2020, make the same check).
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Optional

from scipy import stats

from archsearch.utils.io import read_json


def _finite(v) -> Optional[float]:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def ranking(plan, scores: dict[str, dict[str, float]]) -> dict:
    """{"searches": {search: {tau, rho, n, pairs}}, "methods": {label: mean tau/rho}} from the score jobs'
    results and `scores` (method -> arch -> retrained score)."""
    retrained = {a: v for per in scores.values() for a, v in per.items()}
    out: dict = {"searches": {}, "methods": {}}
    for job in plan.jobs:
        if job.kind != "score":
            continue
        path = Path(job.run_dir) / "scores.json"
        if not path.is_file():
            continue
        oneshot = read_json(path)
        pairs = {a: [oneshot[a], retrained[a]] for a in oneshot if a in retrained and _finite(oneshot[a]) is not None}
        rec: dict = {"n": len(pairs), "tau": None, "tau_p": None, "rho": None, "pairs": pairs}
        if len(pairs) >= 3:
            x, y = zip(*pairs.values())
            tau = stats.kendalltau(x, y)
            rec["tau"], rec["tau_p"] = _finite(tau.statistic), _finite(tau.pvalue)
            rec["rho"] = _finite(stats.spearmanr(x, y).statistic)
        out["searches"][job.id.split("/", 1)[1]] = rec
    by_label: dict[str, list[dict]] = {}
    for name, rec in out["searches"].items():
        by_label.setdefault(name.rsplit("-s", 1)[0], []).append(rec)
    for label, recs in by_label.items():
        taus = [r["tau"] for r in recs if r["tau"] is not None]
        rhos = [r["rho"] for r in recs if r["rho"] is not None]
        out["methods"][label] = {"searches": len(recs), "mean_tau": statistics.fmean(taus) if taus else None,
                                 "mean_rho": statistics.fmean(rhos) if rhos else None}
    return out


def ranking_lines(rank: dict) -> list[str]:
    """Report lines: a table of every search, then one sentence per search method."""
    lines = ["| search | architectures | Kendall tau (two-sided p) | Spearman rho |", "|---|---|---|---|"]
    for name, r in rank.get("searches", {}).items():
        tau = "" if r["tau"] is None else f"{r['tau']:+.2f} ({r['tau_p']:.2g})" if r["tau_p"] is not None \
            else f"{r['tau']:+.2f}"
        rho = "" if r["rho"] is None else f"{r['rho']:+.2f}"
        lines.append(f"| {name} | {r['n']} | {tau} | {rho} |")
    lines.append("")
    for label, m in rank.get("methods", {}).items():
        if m["mean_tau"] is None:
            continue
        recs = [r for n, r in rank["searches"].items() if n.rsplit("-s", 1)[0] == label and r["tau_p"] is not None]
        significant = sum(r["tau_p"] < 0.05 and r["tau"] > 0 for r in recs)
        lines.append(f"- {label}: mean Kendall tau {m['mean_tau']:+.2f}, Spearman rho {m['mean_rho']:+.2f} over "
                     f"{m['searches']} searches; {significant} of {len(recs)} supernets rank the architectures "
                     "better than chance (tau > 0, p < 0.05).")
    return lines


def ranking_figure(rank: dict, out: Path, metric: str) -> Optional[str]:
    """Scatter of supernet score vs retrained score, one panel per search method (search seeds as
    markers); returns the figure's name, or None when there is nothing to draw."""
    by_label: dict[str, list[tuple[str, dict]]] = {}
    for name, rec in rank.get("searches", {}).items():
        if rec["pairs"]:
            by_label.setdefault(name.rsplit("-s", 1)[0], []).append((name, rec))
    if not by_label:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(by_label)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 0.5, 3.4), squeeze=False)
    for ax, (label, recs) in zip(axes[0], by_label.items()):
        for k, (name, rec) in enumerate(recs):
            xs = [100 * p[0] for a, p in rec["pairs"].items()]
            ys = [100 * p[1] for a, p in rec["pairs"].items()]
            random_mask = [a.startswith("random-") for a in rec["pairs"]]
            ax.scatter([x for x, r in zip(xs, random_mask) if r], [y for y, r in zip(ys, random_mask) if r],
                       s=14, color=f"C{k}", alpha=0.6,
                       label=f"{name.rsplit('-s', 1)[1]}: tau {rec['tau']:+.2f}" if rec["tau"] is not None else None)
            ax.scatter([x for x, r in zip(xs, random_mask) if not r], [y for y, r in zip(ys, random_mask) if not r],
                       s=60, marker="*", color=f"C{k}", edgecolor="k", linewidth=0.5)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("supernet score (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, title="seed", title_fontsize=6)
    axes[0][0].set_ylabel(f"retrained test {metric} (%)")
    fig.suptitle("dots: random cells; stars: the search's own", fontsize=8)
    fig.tight_layout()
    for suffix in (".png", ".svg"):
        fig.savefig((out / "ranking").with_suffix(suffix), dpi=120)
    plt.close(fig)
    return "ranking"
