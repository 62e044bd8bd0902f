"""A study's report: one markdown page with the comparison table, a verdict per method and figures."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from archsearch.studies.study import RANDOM, arch_scores
from archsearch.utils.io import atomic_write_text


def _pct(v: Optional[float], digits: int = 2) -> str:
    return "" if v is None else f"{100 * v:.{digits}f}"


def _num(v: Optional[float], fmt: str = "{:.3f}") -> str:
    return "" if v is None else fmt.format(v)


def write_report(plan, rows: list[dict], summary: dict) -> None:
    cfg, out = plan.cfg, plan.out
    figures = _figures(plan, rows)
    metric = summary["metric"]
    lines = [f"# Study {cfg.name}", "",
             f"Searches: {', '.join(f'{e.method()} ({e.preset})' for e in cfg.searches)}, "
             f"search seeds {cfg.search_seeds}. Every architecture trained with `{cfg.retrain.preset}`"
             f"{' ' + ' '.join(cfg.retrain.overrides) if cfg.retrain.overrides else ''}, training seeds "
             f"{cfg.retrain.seeds}. Baselines: {cfg.baselines.random} architectures drawn uniformly from the "
             f"searched space (seed {cfg.baselines.seed})"
             f"{', published ' + ', '.join(cfg.baselines.published) if cfg.baselines.published else ''}.",
             "", f"Score: {metric} ({summary['score']} epoch), in %; a method's architectures are its searches' "
                 "results, each averaged over the training seeds.", "",
             "| method | runs | mean ± std | best search | params (M) | percentile among random | RI vs random "
             "(%) | rank test p | search cost (wall / CPU / GPU h) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, m in summary["methods"].items():
        vs = m.get("vs_random") or {}
        test = vs.get("rank_test")
        cost = m.get("search_cost") or {}
        best = m.get("best_search")
        best_text = f"{_pct(best['score'])} ({best['arch']})" if best else ""
        cost_text = " / ".join(_num(cost.get(k), "{:.3f}") for k in ("wall_h", "cpu_h", "gpu_h")) if cost else ""
        lines.append(
            f"| {name} | {m['runs']} | {_pct(m['mean'])} ± {_pct(m['std'])} | "
            f"{best_text} | {_num(m['params_M'])} | "
            f"{_num(vs.get('percentile_among_random'), '{:.0f}')} | {_num(vs.get('ri_percent'), '{:+.2f}')} | "
            f"{_num(test['p'], '{:.3g}') if test else ''} | "
            f"{cost_text} |")
    lines += ["", "## Against the random architectures", ""]
    lines += [f"- {line}" for line in verdicts(summary)]
    rank = summary.get("ranking") or {}
    if any(m["mean_tau"] is not None for m in rank.get("methods", {}).values()):
        from archsearch.studies.ranking import ranking_figure, ranking_lines

        lines += ["", "## Can the supernets rank architectures?", ""]
        lines += [f"- {line}" for line in ranking_lines(rank)]
        name = ranking_figure(rank, out, plan.metric)
        if name:
            figures.append(("supernet score vs retrained score", name))
    for title, name in figures:
        lines += ["", f"![{title}]({name}.png)"]
    if summary["failed"]:
        lines += ["", "## Runs that did not finish", ""]
        lines += [f"- `{f['run']}`: {f['status']}{': ' + f['error'] if f['error'] else ''}" for f in summary["failed"]]
    lines += ["", "Per-run numbers: `results.csv`; statistics: `summary.json`.", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))


def verdicts(summary: dict) -> list[str]:
    """One plain sentence per compared method."""
    out = []
    for name, m in summary["methods"].items():
        vs = m.get("vs_random")
        if name == RANDOM or not vs:
            continue
        test = vs["rank_test"]
        above = m["mean"] > summary["methods"][RANDOM]["mean"]
        sig = ""
        if test:
            sig = (f"; the rank test finds the difference significant (p={test['p']:.3g})" if test["p"] < 0.05
                   else f"; the rank test cannot tell it from random (p={test['p']:.3g}, "
                        f"{test['n_method']} vs {test['n_random']} architectures)")
        out.append(f"{name}: mean {'above' if above else 'not above'} the random architectures' mean "
                   f"(RI {vs['ri_percent']:+.2f}%, percentile {vs['percentile_among_random']:.0f}){sig}.")
    return out


def _figures(plan, rows: list[dict]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = arch_scores(rows)
    if not scores:
        return []
    names = [RANDOM] + [m for m in scores if m != RANDOM] if RANDOM in scores else list(scores)
    made = []
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 4))
    for i, name in enumerate(names):
        values = [100 * v for v in scores[name].values()]
        color = "0.55" if name == RANDOM else f"C{i}"
        if name == RANDOM and len(values) > 1:  # the random architectures' spread: quartiles and range
            ax.boxplot(values, positions=[i], widths=0.5, showfliers=False, whis=(0, 100),
                       medianprops={"color": "0.55"}, boxprops={"color": "0.7"}, whiskerprops={"color": "0.7"},
                       capprops={"color": "0.7"})
        offsets = [(k - (len(values) - 1) / 2) * min(0.08, 0.5 / len(values)) for k in range(len(values))]
        ax.scatter([i + o for o in offsets], values, s=24, color=color, zorder=3)
        ax.scatter([i + 0.32], [sum(values) / len(values)], marker="<", s=60, color="k", zorder=4)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylabel(f"test {plan.metric} (%, {plan.cfg.score.value} epoch)")
    if RANDOM in scores:
        ax.axhline(100 * sum(scores[RANDOM].values()) / len(scores[RANDOM]), color="0.55", ls="--", lw=0.8)
    ax.set_title("dots: architectures; triangles: means; dashed: random mean", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, plan.out / "strip", plt)
    made.append(("test metric of random vs found architectures", "strip"))

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, name in enumerate(names):
        pts = [(r["params_M"], 100 * r["score"]) for r in rows
               if r["method"] == name and r["role"] != "search" and r["score"] is not None]
        ax.scatter([p for p, _ in pts], [s for _, s in pts], s=22, label=name,
                   color="0.55" if name == RANDOM else f"C{i}")
    ax.set_xlabel("params (M)")
    ax.set_ylabel(f"test {plan.metric} (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, plan.out / "params", plt)
    made.append(("test metric vs parameters, every training run", "params"))
    return made


def _save(fig, path: Path, plt) -> None:
    fig.tight_layout()
    for suffix in (".png", ".svg"):
        fig.savefig(path.with_suffix(suffix), dpi=120)
    plt.close(fig)
