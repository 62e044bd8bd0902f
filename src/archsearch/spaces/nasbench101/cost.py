"""The NAS-Bench-101 network's layout and its analytic parameter and mult-add counts
(docs/methods/nasbench101.md §2), equal to the network models/nasbench101.py builds.

Counts follow the convention of spaces/darts/cost.py: BN is affine (2 parameters a channel),
mult-adds count convolutions and the linear classifier of one image.
"""
from __future__ import annotations

from dataclasses import dataclass

from archsearch.errors import ConfigError
from archsearch.spaces.darts.cost import Cost, conv
from archsearch.spaces.nasbench101.cell import Cell

OP_KERNELS = {"conv3x3-bn-relu": 3, "conv1x1-bn-relu": 1, "maxpool3x3": 0}  # 0: no weights


def vertex_channels(c_in: int, c_out: int, cell: Cell) -> list[int]:
    """Channels of every vertex of a pruned cell (model_builder.py `compute_vertex_channels`).

    The output's channels are split evenly over the vertices that feed it (the first ones get
    the remainder); every other interior vertex takes the largest width of the vertices it feeds,
    so a vertex's consumers only ever truncate it, by one channel at most.
    """
    n, m = cell.vertices, cell.matrix
    channels = [c_in] + [0] * (n - 2) + [c_out]
    if n == 2:
        return channels
    feeders = [v for v in range(1, n - 1) if m[v][n - 1]]
    if c_out < len(feeders):
        raise ConfigError(f"a cell whose output concatenates {len(feeders)} vertices needs at least "
                          f"{len(feeders)} channels, got {c_out}")
    share, extra = divmod(c_out, len(feeders))
    for k, v in enumerate(feeders):
        channels[v] = share + (k < extra)
    for v in range(n - 3, 0, -1):
        if not m[v][n - 1]:
            channels[v] = max(channels[w] for w in range(v + 1, n - 1) if m[v][w])
    return channels


@dataclass(frozen=True)
class Layout:
    """The network around the cells: the stem, `stacks` of `modules_per_stack` cells, the width."""

    width: int = 128
    stacks: int = 3
    modules_per_stack: int = 3
    imagenet_stem: bool = False  # UnNAS's three stride-2 conv3x3-BN-ReLU (w/2, w, w) instead of one conv3x3

    def stem(self, in_channels: int) -> list[tuple[int, int]]:
        """(in, out) channels of the stem's conv3x3-BN-ReLU layers; ImageNet's have stride 2."""
        w = self.width
        return [(in_channels, w // 2), (w // 2, w), (w, w)] if self.imagenet_stem else [(in_channels, w)]

    def check(self) -> None:
        if self.width < 2 or self.stacks < 1 or self.modules_per_stack < 1:
            raise ConfigError(f"NAS-Bench-101 network: width {self.width}, {self.stacks} stacks of "
                              f"{self.modules_per_stack} cells: needs width >= 2 and at least one stack of one cell")


def halved(h: int) -> int:
    """Side after a stride-2 layer: the stem convs (padding 1) and the benchmark's 'same' 2x2 max-pool
    both give ceil(h / 2)."""
    return (h + 1) // 2


def cell_cost(cell: Cell, c_in: int, c_out: int, h: int) -> Cost:
    """One cell (pruned) on an h x h map: the 1x1 projections of the input and the vertex ops."""
    n, m = cell.vertices, cell.matrix
    channels = vertex_channels(c_in, c_out, cell)
    total = Cost()
    for v in range(1, n):
        if m[0][v]:
            total += conv(c_in, channels[v], 1, h)
        if v < n - 1 and OP_KERNELS[cell.ops[v]]:
            total += conv(channels[v], channels[v], OP_KERNELS[cell.ops[v]], h)
    return total


def network_cost(cell: Cell, layout: Layout = Layout(), num_classes: int = 10, in_channels: int = 3,
                 image_size: int = 32) -> Cost:
    """Params and mult-adds of the network on a square input of any side (odd sides halve to ceil)."""
    cell = cell.pruned
    total = Cost()
    h = image_size
    for c_i, c_o in layout.stem(in_channels):
        if layout.imagenet_stem:
            h = halved(h)
        total += conv(c_i, c_o, 3, h)
    c = layout.width
    for stack in range(layout.stacks):
        c_in = c
        if stack > 0:
            h = halved(h)
            c *= 2
        for _ in range(layout.modules_per_stack):
            total += cell_cost(cell, c_in, c, h)
            c_in = c
    total += Cost(c * num_classes + num_classes, c * num_classes)
    return total
