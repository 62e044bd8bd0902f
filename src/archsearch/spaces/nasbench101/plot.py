"""A NAS-Bench-101 cell drawn with matplotlib: vertices in topological order left to right, each
edge an arc above the row (longer edges bend more), so no edge hides behind a vertex."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402

from archsearch.spaces.nasbench101.cell import Cell  # noqa: E402

COLOURS = {"input": "#a8d5a2", "output": "#f5e08c", "maxpool3x3": "#f2b8a2"}
SHORT = {"conv3x3-bn-relu": "conv\n3x3", "conv1x1-bn-relu": "conv\n1x1", "maxpool3x3": "max\npool", "input": "in",
         "output": "out"}


def _bend(span: int) -> float:
    """Arc curvature: longer edges bend more, so arcs of different spans do not overlap."""
    return 0.25 + 0.05 * span


def plot_cell(cell: Cell, title: str):
    p = cell.pruned
    n = p.vertices
    edges = [(u, v) for u in range(n) for v in range(u + 1, n) if p.matrix[u][v]]
    top = max([_bend(v - u) * (v - u) / 2 for u, v in edges] + [0.3])  # an arc's peak: half its bend x its span
    fig, ax = plt.subplots(figsize=(1.3 * (n + 0.4), 1.3 * (top + 1.0)))
    for u, v in edges:
        ax.add_patch(FancyArrowPatch((u, 0), (v, 0), connectionstyle=f"arc3,rad={-_bend(v - u)}", arrowstyle="-|>",
                                     mutation_scale=12, shrinkA=16, shrinkB=16, lw=1.2))
    for v, op in enumerate(p.ops):
        ax.text(v, 0, SHORT.get(op, op), ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.5", fc=COLOURS.get(op, "#a9c8f0"), ec="black"))
    ax.set_xlim(-0.7, n - 0.3)
    ax.set_ylim(-0.5, top + 0.3)
    ax.set_aspect("equal")  # arc3 bends in display space: equal axes keep the peaks where computed
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
