"""Strictly fair path schedules for the unified supernet (FairNAS rule, docs/methods/sgnas.md §3.2).

One supernet step runs `passes` single paths on the same batch and sums their gradients. Per
layer, the expansion rates of the passes are a random permutation of [min, S] (one pass each
when passes = S - min + 1), and the sub-block choices are picked so that, together, the passes
use as many (sub-block, candidate) pairs as the rule allows:

* without forced sampling, the active sub-blocks of a pass are those still needing the most
  kernels (largest-remaining-demand first, random ties) and each takes a kernel it has not used
  yet this step. With S = 6, kernels {3, 5, 7}, expansions 2..6 this covers every kernel of
  every sub-block and skip of every sub-block but the static first one.
* with forced sampling a layer is a sorted kernel sequence followed by skips, so sub-block b is
  active only in passes with e > b and can see at most min(K, #those) kernels; the schedule is
  drawn uniformly from those reaching the largest total coverage (enumerated once and cached).
"""
from __future__ import annotations

import functools
import itertools
import random

from archsearch.spaces.mobile.arch import SKIP, MobileArch


def expansion_schedule(lo: int, hi: int, passes: int, rng: random.Random) -> list[int]:
    """`passes` expansion rates: concatenated random permutations of [lo, hi], cut to length."""
    out: list[int] = []
    while len(out) < passes:
        perm = list(range(lo, hi + 1))
        rng.shuffle(perm)
        out += perm
    return out[:passes]


@functools.lru_cache(maxsize=64)
def best_sorted_schedules(
    expansions: tuple[int, ...], s: int, n_kernels: int
) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """Every assignment of sorted sequences (kernel indices, skip = n_kernels) to the passes of
    `expansions` (in that order) that reaches the largest number of distinct (sub-block, op)."""
    options = [[tuple(c) + (n_kernels,) * (s - e) for c in itertools.combinations_with_replacement(range(n_kernels), e)]
               for e in expansions]
    best: list = []
    best_score = -1
    n = len(expansions)
    active_left = [[sum(e > b for e in expansions[i:]) for b in range(s)] for i in range(n + 1)]
    skip_left = [[any(e <= b for e in expansions[i:]) for b in range(s)] for i in range(n + 1)]

    def bound(i: int, covered: frozenset) -> int:
        """Most pairs the passes i.. can still add: per sub-block, new kernels and a new skip."""
        total = 0
        for b in range(s):
            seen = sum((b, k) in covered for k in range(n_kernels))
            total += min(active_left[i][b], n_kernels - seen)
            total += skip_left[i][b] and (b, n_kernels) not in covered
        return total

    def dfs(i: int, chosen: list, covered: frozenset):
        nonlocal best, best_score
        if len(covered) + bound(i, covered) < best_score:
            return
        if i == n:
            score = len(covered)
            if score > best_score:
                best, best_score = [tuple(chosen)], score
            elif score == best_score:
                best.append(tuple(chosen))
            return
        for seq in options[i]:
            chosen.append(seq)
            dfs(i + 1, chosen, covered | {(b, op) for b, op in enumerate(seq)})
            chosen.pop()

    dfs(0, [], frozenset())
    return tuple(best)


def _free_layer(e: int, s: int, n_kernels: int, covered: set, rng: random.Random) -> tuple[int, ...]:
    """One pass of one layer without forced sampling; sub-block 0 is always active (static)."""
    need = {b: sum((b, k) not in covered for k in range(n_kernels)) for b in range(1, s)}
    order = sorted(need, key=lambda b: (-need[b], rng.random()))
    active = [0] + order[: e - 1]
    seq = [n_kernels] * s
    for b in active:
        fresh = [k for k in range(n_kernels) if (b, k) not in covered]
        seq[b] = rng.choice(fresh or list(range(n_kernels)))
    for b, op in enumerate(seq):
        covered.add((b, op))
    return tuple(seq)


def fair_paths(layout, min_expansion: int, forced: bool, passes: int, rng: random.Random) -> list[MobileArch]:
    """The paths of one strictly fair supernet step (passes <= 0: one per expansion rate)."""
    s, nk = layout.sub_blocks, len(layout.kernels)
    if passes <= 0:
        passes = s - min_expansion + 1
    per_layer = []  # per layer, `passes` op-index sequences
    for _ in layout.layers:
        es = expansion_schedule(min_expansion, s, passes, rng)
        if forced:  # one block of passes per permutation of the expansion rates
            seqs = []
            span = s - min_expansion + 1
            for start in range(0, passes, span):
                chunk = es[start:start + span]
                order = sorted(range(len(chunk)), key=lambda i: -chunk[i])  # cache key independent of order
                pick = rng.choice(best_sorted_schedules(tuple(chunk[i] for i in order), s, nk))
                part = [None] * len(chunk)
                for slot, i in enumerate(order):
                    part[i] = pick[slot]
                seqs += part
        else:
            covered: set = set()
            seqs = [_free_layer(e, s, nk, covered, rng) for e in es]
        per_layer.append(seqs)
    ops = list(layout.kernels) + [SKIP]
    return [MobileArch(tuple(tuple(ops[o] for o in per_layer[li][p]) for li in range(len(layout.layers))))
            for p in range(passes)]
