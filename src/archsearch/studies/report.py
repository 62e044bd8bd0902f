"""A study's report: one markdown page with warnings, the comparison table, the statistics
(noise floor, intervals, power, paired test), a verdict per method and figures."""
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
    lines = [f"# Study {cfg.name}", ""]
    if summary.get("warnings"):
        lines += ["## Warnings", ""] + [f"- {w}" for w in summary["warnings"]] + [""]
    lines += [f"Searches: {', '.join(f'{e.method()} ({e.preset})' for e in cfg.searches)}, "
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
    lines += statistics_section(summary)
    rank = summary.get("ranking") or {}
    if any(m["mean_tau"] is not None for m in rank.get("methods", {}).values()):
        from archsearch.studies.ranking import ranking_figure, ranking_lines

        lines += ["", "## Can the supernets rank architectures?", "",
                  "Every search's final supernet scored the random cells and its own found ones with its inherited "
                  "weights (BN statistics recomputed per architecture); the correlation with the retrained score:", ""]
        lines += ranking_lines(rank)
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


def _ci(pair: Optional[list], scale: float = 100, fmt: str = "{:.2f}") -> str:
    return "" if not pair else f"[{fmt.format(scale * pair[0])}, {fmt.format(scale * pair[1])}]"


def statistics_section(summary: dict) -> list[str]:
    """The noise floor, then per method: difference, intervals, tests, power and the paired test."""
    noise = summary.get("noise")
    if not noise:
        return []
    floor = []
    if noise["binomial_se"] is not None:
        floor.append(f"binomial standard error {_pct(noise['binomial_se'])} points at the random mean on "
                     f"{noise['test_samples']} test samples")
    if noise["seed_std"] is not None:
        floor.append(f"between training seeds of one architecture {_pct(noise['seed_std'])} points (std, pooled)")
    if noise["random_std"] is not None:
        floor.append(f"between random cells {_pct(noise['random_std'])} points (std)")
    lines = ["", "## Statistics", "", f"Noise floor: {'; '.join(floor) or 'unknown'}."
             + (f" Chance level: {_pct(noise['chance'])}%." if noise["chance"] is not None else ""), "",
             "Differences in points of the metric; intervals: 95% bootstrap over the method's architectures and "
             "the random cells; MDE: the smallest true difference a one-sided test at 5% finds with 80% power "
             "at these numbers of architectures; paired: the same test samples, method minus random cells, "
             "with a 95% bootstrap over samples (final-epoch predictions); supernet tau: the mean Kendall tau "
             "between the method's supernets' scores and the retrained scores (below).", "",
             "| method | difference | mean [95% CI] | RI % [95% CI] | percentile [95% CI] | Mann-Whitney p | "
             "Welch p | MDE | paired difference [95% CI] | paired p | supernet tau |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in summary["methods"].items():
        vs = m.get("vs_random")
        if name == RANDOM and "interval" in m:
            lines.append(f"| {name} | | {_pct(m['mean'])} {_ci(m['interval']['mean'])} | | | | | | | | |")
        if not vs:
            continue
        ci, test, paired = vs["interval"], vs["rank_test"], vs["paired"]
        lines.append(
            f"| {name} | {_num(100 * vs['difference'], '{:+.2f}')} | {_pct(m['mean'])} {_ci(ci['mean'])} | "
            f"{_num(vs['ri_percent'], '{:+.2f}')} {_ci(ci['ri_percent'], 1)} | "
            f"{vs['percentile_among_random']:.0f} {_ci(ci['percentile_among_random'], 1, '{:.0f}')} | "
            f"{_num(test['p'] if test else None, '{:.3g}')} | {_num(vs['welch_p'], '{:.3g}')} | "
            f"{_num(None if vs['mde'] is None else 100 * vs['mde'], '{:.2f}')} | "
            f"{_num(100 * paired['difference'], '{:+.2f}') + ' ' + _ci(paired['interval']) if paired else ''} | "
            f"{_num(paired['p'], '{:.3g}') if paired else ''} | {_num(m.get('supernet_tau'), '{:+.2f}')} |")
    return lines


def verdicts(summary: dict) -> list[str]:
    """One line per compared method: the verdict (stats.verdict), then the numbers behind it."""
    out = []
    for name, m in summary["methods"].items():
        vs = m.get("vs_random")
        if name == RANDOM or not vs:
            continue
        welch = f", Welch p={vs['welch_p']:.3g}" if vs["welch_p"] is not None else ""
        out.append(f"{name}: {m['verdict']}; RI {_num(vs['ri_percent'], '{:+.2f}')}%, percentile "
                   f"{vs['percentile_among_random']:.0f}{welch}.")
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
