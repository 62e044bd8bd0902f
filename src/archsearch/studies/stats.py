"""How far a study's numbers can be trusted: noise floor, intervals, power, paired tests, verdicts.

Pure numpy/scipy on plain numbers, so every formula is tested on hand-made values (tests/
test_study_stats.py); study.py gathers the numbers from the runs. Scores are fractions (0.75 is
75 %), as the runs report them; a method's "architectures" are its searches' results, each averaged
over the training seeds, as in `study.compare`.
"""
from __future__ import annotations

import math
import re
import statistics
from typing import Optional

import numpy as np
from scipy import stats

ALPHA = 0.05  # one-sided
POWER = 0.80
RESAMPLES = 2000
LEVEL = 0.95


def chance_level(metric: str, num_classes: Optional[int]) -> Optional[float]:
    """What guessing scores on a top-k accuracy: k / classes (None for other metrics)."""
    found = re.fullmatch(r"(?:test_)?top(\d+)", metric)
    if not found or not num_classes:
        return None
    return min(int(found.group(1)), num_classes) / num_classes


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy p measured on n independent samples: sqrt(p (1 - p) / n)."""
    return math.sqrt(max(p * (1 - p), 0.0) / n)


def pooled_seed_std(groups: list[list[float]]) -> Optional[float]:
    """Spread between training seeds of the same architecture, pooled over the architectures with at
    least two seeds: sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)); None when none has two."""
    groups = [g for g in groups if len(g) >= 2]
    if not groups:
        return None
    dof = sum(len(g) - 1 for g in groups)
    return math.sqrt(sum((len(g) - 1) * statistics.variance(g) for g in groups) / dof)


def min_detectable_effect(spread: float, n_method: int, n_random: int, alpha: float = ALPHA,
                          power: float = POWER) -> float:
    """The smallest true difference of means a one-sided test at `alpha` finds with probability
    `power`, normal approximation: (z_{1-alpha} + z_power) * s * sqrt(1/n_m + 1/n_r), where s is
    the architectures' spread (the random cells' std, taken for both sides)."""
    z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)
    return float(z * spread * math.sqrt(1 / n_method + 1 / n_random))


def welch_p(method: list[float], random_scores: list[float]) -> Optional[float]:
    """One-sided Welch t-test p (method > random); None below two values a side or without spread."""
    if len(method) < 2 or len(random_scores) < 2:
        return None
    p = stats.ttest_ind(method, random_scores, equal_var=False, alternative="greater").pvalue
    return None if math.isnan(p) else float(p)


def _percentile(random_draws: np.ndarray, m: np.ndarray) -> np.ndarray:
    """scipy's percentileofscore(kind="mean") row by row: 100 (#below + #at-or-below) / 2n."""
    below = (random_draws < m[:, None]).sum(1)
    at_or_below = (random_draws <= m[:, None]).sum(1)
    return 50.0 * (below + at_or_below) / random_draws.shape[1]


def _interval(draws: np.ndarray, level: float) -> list[float]:
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def bootstrap(method: list[float], random_scores: list[float], resamples: int = RESAMPLES, seed: int = 0,
              level: float = LEVEL) -> dict:
    """Percentile-bootstrap intervals of the method's mean, its RI over the random mean and its
    percentile among the random cells, resampling the method's architectures (search seeds) and the
    random cells independently. One architecture a side gives a zero-width interval for that side:
    there is nothing to resample."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(method, float), np.asarray(random_scores, float)
    m = a[rng.integers(0, len(a), (resamples, len(a)))].mean(1)
    r_draws = b[rng.integers(0, len(b), (resamples, len(b)))]
    r = r_draws.mean(1)
    out = {"mean": _interval(m, level), "percentile_among_random": _interval(_percentile(r_draws, m), level)}
    out["ri_percent"] = _interval(100 * (m - r) / r, level) if np.all(r != 0) else None
    return out


def bootstrap_mean(values: list[float], resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> list[float]:
    """Percentile-bootstrap interval of a mean (the random cells' own)."""
    rng = np.random.default_rng(seed)
    v = np.asarray(values, float)
    return _interval(v[rng.integers(0, len(v), (resamples, len(v)))].mean(1), level)


def paired_difference(method: np.ndarray, random_cells: np.ndarray, resamples: int = RESAMPLES, seed: int = 0,
                      level: float = LEVEL, chunk: int = 100) -> dict:
    """The same test samples scored by both sides: `method` (architectures x samples) and
    `random_cells` (cells x samples), each a 0/1 (or seed-averaged) correctness.

    Per sample d_i = (share of the method's architectures right) - (share of the random cells
    right); the mean of d is the difference of the two sides' mean accuracies on this test set.
    Its interval resamples the samples (paired: a sample's d moves as one), and p is a one-sided
    paired t-test of d > 0. This measures whether the difference exceeds the noise of the test
    sample alone, with these very architectures fixed; it says nothing about other searches or
    other random draws, which the bootstrap over architectures and the rank test cover.
    """
    d = np.asarray(method, float).mean(0) - np.asarray(random_cells, float).mean(0)
    rng = np.random.default_rng(seed)
    means = np.concatenate([d[rng.integers(0, len(d), (min(chunk, resamples - i), len(d)))].mean(1)
                            for i in range(0, resamples, chunk)])
    p = stats.ttest_1samp(d, 0.0, alternative="greater").pvalue if np.any(d != d[0]) else None
    return {"difference": float(d.mean()), "interval": _interval(means, level),
            "p": None if p is None or math.isnan(p) else float(p), "samples": int(len(d)),
            "test": "paired t-test over test samples, one-sided (method > random)"}


def verdict(difference: float, p: Optional[float], percentile: float, mde: Optional[float]) -> str:
    """One line: above random, indistinguishable at this size, or not above random. `p` is the
    one-sided rank test's (None below two architectures a side, when no test can tell anything);
    differences are printed in points of the metric (fractions x 100)."""
    if p is not None and p < ALPHA and percentile >= 80:
        return f"above random (Mann-Whitney p={p:.3g}, percentile {percentile:.0f})"
    if p is None or mde is None:
        return ("cannot separate at this size: a test needs at least two architectures a side "
                f"(observed difference {100 * difference:+.2f} points)")
    if abs(difference) < mde:
        return (f"cannot separate at this size: observed difference {100 * difference:+.2f} points is below the "
                f"minimum detectable effect {100 * mde:.2f} points")
    return f"not above random (difference {100 * difference:+.2f} points, Mann-Whitney p={p:.3g})"


def study_warnings(search_seeds: int, random_cells: int, means: dict[str, float], chance: Optional[float],
                   samples: Optional[int], unfinished: dict[str, int]) -> list[str]:
    """What makes the study's statistics weak or meaningless, one sentence each. `means`: each
    method's (and the random cells') mean score; `unfinished`: run status -> count, not done."""
    out = []
    if search_seeds < 2:
        out.append(f"{search_seeds} search seed: a method's result is one search; its spread over seeds is unknown")
    if random_cells < 5:
        out.append(f"only {random_cells} random cells with a score: percentile and tests against them are coarse")
    if chance is not None and samples:
        band = 2 * binomial_se(chance, samples)
        near = [f"{name} ({100 * m:.2f}%)" for name, m in means.items() if abs(m - chance) < band]
        if near:
            out.append(f"at chance level: {', '.join(near)} within 2 binomial standard errors ({100 * band:.2f} "
                       f"points at {samples} test samples) of chance {100 * chance:.2f}%; the comparison is noise")
    if unfinished:
        out.append(f"{sum(unfinished.values())} runs did not finish ("
                   + ", ".join(f"{n} {status}" for status, n in sorted(unfinished.items()))
                   + "); the statistics leave them out")
    return out
