"""Anytime architecture weights (VIM-NAS supplement, Figure 8): each edge's op probabilities
over the search, one panel per edge laid out node by node, one line per operation."""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from archsearch.viz.history import edge_entropies  # noqa: E402

STATE_LABELS = ("$c_{k-2}$", "$c_{k-1}$")


def state_label(j: int) -> str:
    return STATE_LABELS[j] if j < 2 else str(j - 2)


def op_colours(names: Sequence[str]) -> dict[str, tuple]:
    """One fixed colour per operation name, the same in every panel and figure."""
    cmap = plt.get_cmap("tab10")
    palette = [cmap(i) for i in range(10) if i != 7]  # tab10's grey is kept for `none`
    ordered = sorted(set(names) - {"none"})
    colours = {n: palette[i % len(palette)] for i, n in enumerate(ordered)}
    return {"none": cmap(7), **colours} if "none" in names else colours


def edge_layout(nodes: int) -> list[tuple[int, int]]:
    """(node, source) of every edge in row order: node i has sources 0 .. i+1."""
    return [(i, j) for i in range(nodes) for j in range(2 + i)]


def plot_anytime_weights(epochs: np.ndarray, weights: np.ndarray, op_names: Sequence[Sequence[str]],
                         nodes: int, title: str, kept: Optional[set] = None):
    """One panel per edge (row = target node, column = source), one line per op.

    weights: (T, edges, ops). Panels of the edges the derived genotype keeps get a thick frame.
    """
    edges = edge_layout(nodes)
    cols = nodes + 1
    fig, axes = plt.subplots(nodes, cols, figsize=(2.3 * cols, 1.7 * nodes + 0.9), sharex=True, sharey=True,
                             squeeze=False)
    colours = op_colours([n for row in op_names for n in row])
    for ax in axes.flat:
        ax.set_visible(False)
    for e, (i, j) in enumerate(edges):
        ax = axes[i][j]
        ax.set_visible(True)
        for k, name in enumerate(op_names[e]):
            ax.plot(epochs, weights[:, e, k], color=colours[name], lw=1.3,
                    ls="--" if name == "none" else "-", label=name)
        ax.set_title(f"{state_label(j)} → {i}", fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        if kept and (i, j) in kept:
            for s in ax.spines.values():
                s.set_linewidth(2.0)
        if j == 0:
            ax.set_ylabel("probability", fontsize=8)
        if i == nodes - 1:
            ax.set_xlabel("epoch", fontsize=8)
    handles = [plt.Line2D([], [], color=c, lw=2, ls="--" if n == "none" else "-") for n, c in colours.items()]
    fig.legend(handles, list(colours), loc="lower center", ncol=min(len(colours), 8), fontsize=8, frameon=False)
    fig.suptitle(title + "  (thick frame: edge kept in the derived cell)" if kept else title, fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return fig


def plot_entropy(series: dict[str, tuple[np.ndarray, np.ndarray]], uniform: float, title: str):
    """Mean per-edge entropy (nats) of each cell type's op distribution over the search."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for kind, (x, w) in series.items():
        ax.plot(x, edge_entropies(w), lw=1.6, label=kind)
    ax.axhline(uniform, color="grey", ls=":", lw=1, label=f"uniform (ln {int(round(np.exp(uniform)))})")
    ax.set_ylim(0, uniform * 1.05)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean edge entropy (nats)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
