"""Layer diagrams of generated architectures, in the manner of the SGNAS supplement's Figs. 9/10.

One row per architecture; each searchable layer is a column of stacked cells, one per active
sub-block (so the column height is the expansion rate), coloured by its depthwise kernel.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch, Rectangle

COLORS = ["#8ecae6", "#ffb703", "#c1121f", "#219ebc", "#6a4c93", "#2a9d8f"]


def plot_architectures(items: list[tuple[str, object]], kernels: tuple[int, ...], sub_blocks: int, path: Path) -> Path:
    """items: (title, MobileArch) pairs; writes a PNG and returns its path."""
    fig = draw_architectures(items, kernels, sub_blocks)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def draw_architectures(items: list[tuple[str, object]], kernels: tuple[int, ...], sub_blocks: int):
    """The figure of `plot_architectures`, unsaved."""
    n_layers = max(len(a.layers) for _, a in items)
    fig, axes = plt.subplots(len(items), 1, figsize=(max(6.0, 0.45 * n_layers + 1.5), 1.6 + 1.1 * len(items)),
                             squeeze=False)
    color = {k: COLORS[i % len(COLORS)] for i, k in enumerate(kernels)}
    for ax, (title, arch) in zip(axes[:, 0], items):
        for i, ks in enumerate(arch.kernels):
            for j, k in enumerate(ks):
                ax.add_patch(Rectangle((i + 0.08, j), 0.84, 0.92, facecolor=color[k], edgecolor="black", lw=0.5))
            ax.text(i + 0.5, len(ks) + 0.15, str(len(ks)), ha="center", va="bottom", fontsize=7)
        ax.set_xlim(0, n_layers)
        ax.set_ylim(0, sub_blocks + 1.2)
        ax.set_xticks([i + 0.5 for i in range(n_layers)], [str(i + 1) for i in range(n_layers)], fontsize=7)
        ax.set_yticks(range(0, sub_blocks + 1, 2))
        ax.set_ylabel("expansion", fontsize=8)
        ax.set_title(title, fontsize=9, loc="left")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[-1, 0].set_xlabel("searchable layer (cells = active sub-blocks, MBE1 with kernel K)", fontsize=8)
    fig.legend(handles=[Patch(facecolor=color[k], edgecolor="black", label=f"K{k}") for k in kernels],
               loc="upper right", ncol=len(kernels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig
