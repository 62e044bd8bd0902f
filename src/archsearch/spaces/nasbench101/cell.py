"""NAS-Bench-101 cells: an adjacency matrix with op labels, checked, pruned, hashed and sampled
as the benchmark does (docs/methods/nasbench101.md §1; google-research/nasbench
`nasbench/lib/model_spec.py`, `graph_util.py`, `api.py`).

A cell is a DAG of at most 7 vertices and 9 edges: vertex 0 is the input, the last vertex the
output, every other vertex one op. Vertices on no input-to-output path compute nothing, so the
network and the hash use the pruned graph; the cell itself keeps what it was given.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

from archsearch.errors import GenotypeError

INPUT, OUTPUT = "input", "output"
OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")  # the benchmark's `available_ops`, in its order
MAX_VERTICES = 7
MAX_EDGES = 9

Matrix = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Cell:
    """Upper-triangular 0/1 `matrix` (matrix[i][j] = 1: an edge i -> j) and one label per vertex.

    `network` holds the network sizes a file stated (width, stacks, modules_per_stack, ...), if
    any; it is not part of the cell's identity.
    """

    matrix: Matrix
    ops: tuple[str, ...]
    network: Optional[dict] = field(default=None, compare=False, hash=False)

    @classmethod
    def of(cls, matrix, ops, network: Optional[dict] = None, where: str = "cell") -> "Cell":
        """The checked cell: every reader and the sampler end here."""
        cell = cls(_matrix(matrix, where), _labels(ops, where), network)
        check(cell, where)
        return cell

    @cached_property
    def pruned(self) -> "Cell":
        """The cell without the vertices that lie on no input-to-output path."""
        return prune(self)

    @property
    def vertices(self) -> int:
        return len(self.ops)

    @property
    def edges(self) -> int:
        return sum(map(sum, self.matrix))

    def to_dict(self) -> dict:
        return {"matrix": [list(r) for r in self.matrix], "ops": list(self.ops)}

    def spec_hash(self) -> str:
        """The benchmark's isomorphism-invariant hash, the key of its dataset."""
        return graph_hash(self.pruned)


def _brief(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _matrix(m, where: str) -> Matrix:
    """A square list of 0/1 rows (bools are typos, not bits)."""
    if not isinstance(m, (list, tuple)) or not m:
        raise GenotypeError(f"{where}: the matrix must be a non-empty list of rows, got {_brief(m)}")
    n = len(m)
    for i, row in enumerate(m):
        if not isinstance(row, (list, tuple)) or len(row) != n:
            raise GenotypeError(f"{where}: the matrix must be square ({n} rows of {n}); row {i} is {_brief(row)}")
        if any(isinstance(b, bool) or b not in (0, 1) for b in row):
            raise GenotypeError(f"{where}: matrix row {i} holds something other than 0 and 1: {_brief(row)}")
    return tuple(tuple(int(b) for b in row) for row in m)


def _labels(ops, where: str) -> tuple[str, ...]:
    if not isinstance(ops, (list, tuple)) or not all(isinstance(o, str) for o in ops):
        raise GenotypeError(f"{where}: ops must be a list of labels, got {_brief(ops)}")
    return tuple(ops)


def check(cell: Cell, where: str = "cell") -> None:
    """The benchmark's rules (api.py `_check_spec`); labels are checked on every vertex, pruned or not."""
    n = cell.vertices
    if len(cell.matrix) != n:
        raise GenotypeError(f"{where}: {len(cell.matrix)}x{len(cell.matrix)} matrix but {n} op labels")
    if n < 2:
        raise GenotypeError(f"{where}: a cell needs at least the input and output vertices")
    if any(cell.matrix[i][j] for i in range(n) for j in range(i + 1)):
        raise GenotypeError(f"{where}: the matrix must be strictly upper triangular (edges go from lower to "
                            "higher vertices)")
    if cell.ops[0] != INPUT or cell.ops[-1] != OUTPUT:
        raise GenotypeError(f"{where}: the first label must be {INPUT!r} and the last {OUTPUT!r}, got "
                            f"{cell.ops[0]!r} and {cell.ops[-1]!r}")
    bad = next((o for o in cell.ops[1:-1] if o not in OPS), None)
    if bad is not None:
        raise GenotypeError(f"{where}: unknown op {bad!r}; a vertex is one of {', '.join(OPS)}")
    pruned = cell.pruned
    if pruned is None:
        raise GenotypeError(f"{where}: no path leads from the input to the output")
    if pruned.vertices > MAX_VERTICES:
        raise GenotypeError(f"{where}: {pruned.vertices} vertices after pruning, at most {MAX_VERTICES}")
    if pruned.edges > MAX_EDGES:
        raise GenotypeError(f"{where}: {pruned.edges} edges after pruning, at most {MAX_EDGES}")


def prune(cell: Cell) -> Optional[Cell]:
    """Keep the vertices reachable from the input and reaching the output (None: they are not joined)."""
    n, m = cell.vertices, cell.matrix
    forward = _reach(0, lambda v: (w for w in range(v + 1, n) if m[v][w]))
    backward = _reach(n - 1, lambda v: (u for u in range(v) if m[u][v]))
    keep = sorted(forward & backward)
    if len(keep) < 2:
        return None
    if len(keep) == n:
        return cell
    return Cell(tuple(tuple(m[i][j] for j in keep) for i in keep), tuple(cell.ops[i] for i in keep))


def _reach(start: int, neighbours) -> set[int]:
    seen, todo = {start}, [start]
    while todo:
        for w in neighbours(todo.pop()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def graph_hash(cell: Cell) -> str:
    """graph_util.hash_module on the cell as given (prune first): each vertex starts from
    (out-degree, in-degree, label), input = -1, output = -2, an op its index in OPS; `vertices`
    rounds each rehash a vertex with the sorted hashes of its in- and out-neighbours; the md5 of the
    sorted final hashes is the key. Isomorphic graphs get the same key."""
    n, m = cell.vertices, cell.matrix
    labels = [-1] + [OPS.index(o) for o in cell.ops[1:-1]] + [-2]
    hashes = [_md5(str((sum(m[v]), sum(m[u][v] for u in range(n)), labels[v]))) for v in range(n)]
    for _ in range(n):
        hashes = [_md5("".join(sorted(hashes[u] for u in range(n) if m[u][v])) + "|"
                       + "".join(sorted(hashes[w] for w in range(n) if m[v][w])) + "|" + hashes[v])
                  for v in range(n)]
    return _md5(str(sorted(hashes)))


def random_cell(rng: random.Random) -> Cell:
    """One draw of the benchmark's rejection sampler: every edge above the diagonal of a 7x7 matrix
    with probability 1/2 and every interior label uniform over OPS, redrawn until the cell is valid."""
    n = MAX_VERTICES
    while True:
        matrix = tuple(tuple(int(j > i and rng.random() < 0.5) for j in range(n)) for i in range(n))
        ops = (INPUT, *(rng.choice(OPS) for _ in range(n - 2)), OUTPUT)
        try:
            return Cell.of(matrix, ops)
        except GenotypeError:
            continue


def sample_cells(count: int, rng: random.Random) -> list[Cell]:
    """`count` cells of distinct hashes (distinct networks), in the order drawn."""
    cells: dict[str, Cell] = {}
    while len(cells) < count:
        cell = random_cell(rng)
        cells.setdefault(cell.spec_hash(), cell)
    return list(cells.values())
