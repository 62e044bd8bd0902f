"""Derived cells as graphs, in the DARTS drawing convention, laid out by hand (no graphviz).

Inputs c_{k-2} and c_{k-1} on the left, intermediate nodes 0..n-1 left to right in a zig-zag,
the output c_{k} on the right; every kept edge is an arrow labelled with its operation, and the
concatenated nodes feed the output with plain arrows.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch  # noqa: E402

INPUT_COLOUR, NODE_COLOUR, OUTPUT_COLOUR = "#a8d5a2", "#a9c8f0", "#f5e08c"
RADIUS = 0.42


def node_positions(nodes: int) -> dict[int, tuple[float, float]]:
    """State index -> (x, y): 0, 1 the inputs, 2+i intermediate node i, 2+nodes the output."""
    pos = {0: (0.0, 1.4), 1: (0.0, -1.4)}
    for i in range(nodes):
        pos[2 + i] = (2.2 + 1.9 * i, 0.9 if i % 2 == 0 else -0.9)
    pos[2 + nodes] = (2.2 + 1.9 * nodes + 1.0, 0.0)
    return pos


def _label(state: int, nodes: int) -> str:
    if state < 2:
        return ("$c_{k-2}$", "$c_{k-1}$")[state]
    return "$c_{k}$" if state == 2 + nodes else str(state - 2)


def _bezier(p0, p2, rad: float, n: int = 40) -> np.ndarray:
    """Points of matplotlib's arc3 curve: a quadratic Bezier with control mid + rad * (dy, -dx)."""
    p0, p2 = np.asarray(p0), np.asarray(p2)
    d = p2 - p0
    c = (p0 + p2) / 2 + rad * np.array([d[1], -d[0]])
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * c + t ** 2 * p2


def _curvature(src: int, dst: int, pos) -> float:
    """The least bent arc that keeps clear of every other node (else the clearest one)."""
    others = np.array([p for s, p in pos.items() if s not in (src, dst)])
    best, best_gap = 0.0, -1.0
    for rad in (0.0, -0.15, 0.15, -0.3, 0.3, -0.45, 0.45):
        pts = _bezier(pos[src], pos[dst], rad)
        gap = np.min(np.linalg.norm(pts[:, None, :] - others[None], axis=-1))
        if gap >= RADIUS + 0.25:
            return rad
        if gap > best_gap:
            best, best_gap = rad, gap
    return best


def _label_spot(curve: np.ndarray, placed: list) -> tuple[float, float]:
    """The point of the curve nearest its middle whose label keeps clear of earlier labels."""
    best, best_gap = curve[len(curve) // 2], -1.0
    for t in (10, 8, 12, 6, 14):  # indices into 21 points: the middle first
        p = curve[t]
        gap = min((abs(p[0] - q[0]) / 1.4 + abs(p[1] - q[1]) / 0.3 for q in placed), default=9.0)
        if gap >= 1.0:
            return float(p[0]), float(p[1])
        if gap > best_gap:
            best, best_gap = p, gap
    return float(best[0]), float(best[1])


def draw_cell(ax, cell: Sequence[tuple[str, int]], concat: Sequence[int], title: str = "") -> None:
    """Draw one cell: `cell` holds (op, input state) pairs, two per intermediate node."""
    nodes = len(cell) // 2
    pos = node_positions(nodes)
    out = 2 + nodes
    patches = {}
    for s, (x, y) in pos.items():
        colour = INPUT_COLOUR if s < 2 else OUTPUT_COLOUR if s == out else NODE_COLOUR
        patches[s] = Circle((x, y), RADIUS, facecolor=colour, edgecolor="black", lw=1.0, zorder=3)
        ax.add_patch(patches[s])
        ax.text(x, y, _label(s, nodes), ha="center", va="center", fontsize=10, zorder=4)
    placed: list[tuple[float, float]] = []
    for k, (op, src) in enumerate(cell):
        dst = 2 + k // 2
        rad = _curvature(src, dst, pos)
        ax.add_patch(FancyArrowPatch(pos[src], pos[dst], patchA=patches[src], patchB=patches[dst],
                                     connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=11,
                                     lw=1.1, color="black", zorder=2))
        lx, ly = _label_spot(_bezier(pos[src], pos[dst], rad, n=21), placed)
        placed.append((lx, ly))
        ax.text(lx, ly, op, ha="center", va="center", fontsize=7, zorder=5,
                bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.9))
    for s in concat:
        ax.add_patch(FancyArrowPatch(pos[s], pos[out], patchA=patches[s], patchB=patches[out],
                                     connectionstyle="arc3,rad=0", arrowstyle="-|>", mutation_scale=10,
                                     lw=0.9, color="grey", zorder=1))
    xs = [p[0] for p in pos.values()]
    ax.set_xlim(min(xs) - 0.7, max(xs) + 0.7)
    ax.set_ylim(-2.6, 2.6)
    ax.set_aspect("equal")  # the label positions above assume equal scales
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11)


def plot_genotype(genotype, title: str = ""):
    """Normal and reduction cell of a Genotype, one above the other."""
    fig, axes = plt.subplots(2, 1, figsize=(9.5, 7.6))
    draw_cell(axes[0], genotype.normal, genotype.normal_concat, "normal cell")
    draw_cell(axes[1], genotype.reduce, genotype.reduce_concat, "reduction cell")
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig
