"""Discrete DARTS-style cells: the genotype data type and its validation, derivation and sampling.

Text forms (archsearch JSON, the originals' `Genotype(...)` repr, pycls YAML) live in `formats/`;
every reader ends in `Genotype.from_dict`, so all of them get the same checks.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from archsearch.errors import GenotypeError
from archsearch.spaces.darts.ops import OPS
from archsearch.utils.io import atomic_write_json

Cell = tuple[tuple[str, int], ...]


def edge_sources(nodes: int) -> list[tuple[int, int]]:
    """(target node, source state) of every edge, in the row order of the weights.

    Node i has one edge from each earlier state: the two inputs and nodes 0..i-1.
    """
    return [(i, j) for i in range(nodes) for j in range(2 + i)]


def node_offsets(nodes: int) -> list[int]:
    """First edge row of each node: 0, 2, 5, 9 for four nodes."""
    return [sum(2 + k for k in range(i)) for i in range(nodes)]


@dataclass(frozen=True)
class Genotype:
    """Two ops per intermediate node (op name, input state) and the concatenated states.

    Input state 0 is c_{k-2}, 1 is c_{k-1}, 2+m is node m. Pairs 2i, 2i+1 feed node i.
    """

    normal: Cell
    normal_concat: tuple[int, ...]
    reduce: Cell
    reduce_concat: tuple[int, ...]

    def to_dict(self) -> dict:
        return {
            "normal": [list(p) for p in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(p) for p in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, d: dict, where: str = "genotype") -> "Genotype":
        """The one validation every reader ends in: op names, input indices, concatenated states."""
        if not isinstance(d, dict):
            raise GenotypeError(f"{where}: expected the fields normal, normal_concat, reduce and reduce_concat")
        missing = {"normal", "normal_concat", "reduce", "reduce_concat"} - set(d)
        if missing:
            raise GenotypeError(f"{where}: missing key(s) {', '.join(sorted(missing))}")
        g = cls(
            normal=_cell(d["normal"], f"{where}.normal"),
            normal_concat=_concat(d["normal_concat"], f"{where}.normal_concat"),
            reduce=_cell(d["reduce"], f"{where}.reduce"),
            reduce_concat=_concat(d["reduce_concat"], f"{where}.reduce_concat"),
        )
        for name in ("normal", "reduce"):
            cell, concat = getattr(g, name), getattr(g, name + "_concat")
            states = 2 + len(cell) // 2
            if any(not 0 <= c < states for c in concat):
                raise GenotypeError(f"{where}.{name}_concat: states must lie in [0, {states})")
        return g

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> "Genotype":
        """A genotype file in any known format (see `formats/`)."""
        from archsearch.spaces.darts.formats import read_genotype_file  # formats imports this module

        return read_genotype_file(Path(path))


def _brief(value, limit: int = 60) -> str:
    """repr() cut short: error messages stay one readable line whatever the input holds."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cell(pairs, where: str) -> Cell:
    if not isinstance(pairs, list) or not pairs or len(pairs) % 2:
        raise GenotypeError(f"{where}: expected a non-empty list with two [op, input] pairs per node")
    out = []
    for k, p in enumerate(pairs):
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str)
                and isinstance(p[1], int) and not isinstance(p[1], bool)):
            raise GenotypeError(f"{where}[{k}]: expected [op_name, input_index], got {_brief(p)}")
        op, src = p
        if op not in OPS:
            raise GenotypeError(f"{where}[{k}]: unknown operation {op!r}")
        node = k // 2
        if not 0 <= src < 2 + node:
            raise GenotypeError(f"{where}[{k}]: node {node} can only take inputs 0..{1 + node}, got {src}")
        out.append((op, src))
    return tuple(out)


def _concat(c, where: str) -> tuple[int, ...]:
    # bool is an int subclass, but `true` in a YAML list is a typo, not state 1
    if not isinstance(c, list) or not c or not all(isinstance(i, int) and not isinstance(i, bool) for i in c):
        raise GenotypeError(f"{where}: expected a non-empty list of state indices, got {_brief(c)}")
    return tuple(c)


def derive_cell(weights: torch.Tensor, op_names: Sequence[Sequence[str]], nodes: int) -> Cell:
    """The DARTS top-2 rule on one cell's (edges, ops) weight matrix.

    Per node: rank incoming edges by their strongest op other than `none` (stable, so ties keep
    the lower source), keep two, and take each kept edge's strongest non-`none` op (ties go to
    the lower column). `none` never appears in the result.
    """
    w = weights.detach().double().cpu()
    cell: list[tuple[str, int]] = []
    for i, start in enumerate(node_offsets(nodes)):
        best = []  # (strength, source, op)
        for j in range(2 + i):
            names = op_names[start + j]
            cand = [k for k, n in enumerate(names) if n != "none"]
            k_best = max(cand, key=lambda k: (w[start + j, k].item(), -k))
            best.append((w[start + j, k_best].item(), j, names[k_best]))
        kept = sorted(best, key=lambda t: -t[0])[:2]  # sorted() is stable
        cell.extend((op, j) for _, j, op in kept)
    return tuple(cell)


def sample_cell(op_names: Sequence[Sequence[str]], nodes: int, rng: random.Random, unnas: bool = False) -> Cell:
    """Uniform random cell.

    Default (random search): two distinct inputs per node, a non-`none` op on each. `unnas`: the
    distribution of the UnNAS sample (docs/methods/unnas.md §3.1): each of a node's two inputs drawn with
    replacement, ops drawn from every candidate, `none` included.
    """
    cell = []
    offsets = node_offsets(nodes)
    for i in range(nodes):
        sources = [rng.randrange(2 + i) for _ in range(2)] if unnas else sorted(rng.sample(range(2 + i), 2))
        for j in sources:
            ops = [n for n in op_names[offsets[i] + j] if unnas or n != "none"]
            cell.append((rng.choice(ops), j))
    return tuple(cell)


PUBLISHED = Path(__file__).with_name("published.json")


def published_genotypes() -> dict[str, Genotype]:
    """Genotypes reported by the papers (DARTS, PC-DARTS, MiLeNAS), by name."""
    data = json.loads(PUBLISHED.read_text())
    return {name: Genotype.from_dict(d, where=name) for name, d in data.items()}


def resolve_genotype(ref: str) -> Genotype:
    """A published name, a run directory, or a genotype file or text in any known format."""
    from archsearch.spaces.darts.formats import resolve_genotype as resolve  # formats imports this module

    return resolve(ref)
