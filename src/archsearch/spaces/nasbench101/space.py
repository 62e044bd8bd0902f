"""The NAS-Bench-101 space (`nasbench101`): cells for sample-based studies, without a supernet
(docs/methods/nasbench101.md §1, §3)."""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from archsearch.config import SpaceConfig
from archsearch.errors import ConfigError
from archsearch.spaces.base import SPACES, SearchSpace, cost_record
from archsearch.spaces.nasbench101.cell import OPS, Cell, random_cell
from archsearch.spaces.nasbench101.cost import Layout, network_cost
from archsearch.spaces.nasbench101.formats import read_cell

NO_SUPERNET = ("the nasbench101 space has no weight-sharing supernet: it is for sample-based studies "
               "(cells sampled or read, each network trained on its own)")


@dataclass
class NasBench101SpaceConfig(SpaceConfig):
    """NAS-Bench-101 cells: at most 7 vertices and 9 edges, ops conv3x3, conv1x1, maxpool3x3."""

    name: str = "nasbench101"


def show_cell(cell: Cell) -> list[str]:
    """Each vertex of the pruned cell with its op and inputs, then its size and hash."""
    p = cell.pruned
    n = p.vertices
    name = {0: "in", n - 1: "out"}
    parts = [f"{name.get(v, v)}: {'output' if v == n - 1 else p.ops[v]}<-"
             + ",".join(str(name.get(u, u)) for u in range(v) if p.matrix[u][v]) for v in range(1, n)]
    pruned = "" if p.vertices == cell.vertices else f" (pruned from {cell.vertices})"
    return ["cell    " + "  ".join(parts),
            f"{n} vertices{pruned}, {p.edges} edge{'s' * (p.edges != 1)}, hash {cell.spec_hash()}"]


class NasBench101Space(SearchSpace):
    name = "nasbench101"

    def __init__(self, cfg: NasBench101SpaceConfig):
        self.cfg = cfg

    # -- no supernet --------------------------------------------------------------------------
    def arch_shapes(self):
        raise ConfigError(NO_SUPERNET)

    def edge_groups(self):
        raise ConfigError(NO_SUPERNET)

    def build_supernet(self, in_channels, image_size, head):
        raise ConfigError(NO_SUPERNET)

    def derive(self, weights):
        raise ConfigError(NO_SUPERNET)

    def one_hot(self, arch):
        raise ConfigError(NO_SUPERNET)

    # -- discrete cells -----------------------------------------------------------------------
    def sample(self, rng: random.Random) -> Cell:
        """The benchmark's rejection sampler (`cell.sample_cells` also removes repeated hashes)."""
        return random_cell(rng)

    def arch_to_dict(self, arch: Cell) -> dict:
        return arch.to_dict()

    def arch_from_dict(self, d: dict) -> Cell:
        return read_cell(d, "genotype")

    def cost(self, arch: Cell, info) -> dict:
        """The benchmark's CIFAR network (width 128, 3 stacks x 3 cells), or UnNAS's ImageNet one (3 x 4,
        stride-8 stem) for inputs of 128 px and more."""
        imagenet = info.image_size >= 128
        layout = Layout(modules_per_stack=4, imagenet_stem=True) if imagenet else Layout()
        cost = network_cost(arch, layout, info.num_classes, info.in_channels, info.image_size)
        return cost_record(f"NAS-Bench-101 network ({layout.stacks} stacks x {layout.modules_per_stack} cells, "
                           f"width {layout.width})", cost.params, cost.macs, width=layout.width,
                           stacks=layout.stacks, modules_per_stack=layout.modules_per_stack)

    def describe(self, arch: Cell) -> dict:
        p = arch.pruned
        ops = Counter(p.ops[1:-1])
        return {"cell": {"vertices": p.vertices, "edges": p.edges, "hash": arch.spec_hash(),
                         "ops": {op: ops.get(op, 0) for op in OPS}}}

    def plot_architecture(self, arch: Cell, title: str):
        from archsearch.spaces.nasbench101.plot import plot_cell

        return plot_cell(arch, title)


SPACES.register("nasbench101", config=NasBench101SpaceConfig)(NasBench101Space)
