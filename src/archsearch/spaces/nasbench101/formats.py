"""Text forms of a NAS-Bench-101 cell: archsearch JSON ({"matrix", "ops"}, optionally the
"network" sizes), the benchmark's spec ({"module_adjacency", "module_operations"}, the fields of
its dataset records; `api.ModelSpec(matrix, ops)` takes the first form), and UnNAS's pycls YAML
(`MODEL.TYPE: nas_bench`, `NAS.MATRIX`, `NAS.OPS` and the network sizes).

Every reader ends in `Cell.of`, so all of them get the same checks; the sizes a file states
travel with the cell (`Cell.network`) for `archsearch genotype` and a model file.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Optional

import yaml

from archsearch.errors import GenotypeError
from archsearch.registry import Registry
from archsearch.spaces.nasbench101.cell import Cell
from archsearch.utils.io import read_small_text

MAX_BYTES = 2 << 20  # a cell file is well under a kilobyte; a larger one is something else
SIZES = ("width", "stacks", "modules_per_stack", "classes", "image_size", "in_channels")
STEMS = ("cifar", "imagenet")


class CellFormat(ABC):
    """One text form: `match` says whether parsed data is in this form, `read` takes the cell out."""

    @abstractmethod
    def match(self, data) -> bool: ...

    @abstractmethod
    def read(self, data: dict, where: str) -> Cell: ...

    @abstractmethod
    def write(self, cell: Cell) -> str: ...


CELL_FORMATS: Registry[CellFormat] = Registry("NAS-Bench-101 cell format")


def _sizes(values: dict, where: str) -> Optional[dict]:
    """The stated network sizes, checked: positive integers, and the stem's name."""
    out = {}
    for key, v in values.items():
        if v is None:
            continue
        if key == "stem":
            if v not in STEMS:
                raise GenotypeError(f"{where}: stem must be one of {', '.join(STEMS)}, got {v!r}")
        elif key not in SIZES:
            raise GenotypeError(f"{where}: unknown network size {key!r}; known: {', '.join(SIZES)}, stem")
        elif isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise GenotypeError(f"{where}: network size {key} must be a positive integer, got {v!r}")
        out[key] = v
    return out or None


@CELL_FORMATS.register("json")
class ArchsearchJson(CellFormat):
    def match(self, data) -> bool:
        return isinstance(data, dict) and ("matrix" in data or "ops" in data)

    def read(self, data: dict, where: str) -> Cell:
        network = data.get("network") or {}
        if not isinstance(network, dict):
            raise GenotypeError(f"{where}: `network` must be an object of sizes")
        return Cell.of(data.get("matrix"), data.get("ops"), _sizes(network, f"{where}.network"), where)

    def write(self, cell: Cell) -> str:
        d = cell.to_dict()
        if cell.network:
            d["network"] = dict(cell.network)
        rows = ",\n    ".join(json.dumps(r) for r in d["matrix"])
        rest = "".join(f',\n  "{k}": {json.dumps(d[k])}' for k in ("ops", "network") if k in d)
        return '{\n  "matrix": [\n    ' + rows + "\n  ]" + rest + "\n}\n"


@CELL_FORMATS.register("nasbench")
class BenchmarkSpec(CellFormat):
    def match(self, data) -> bool:
        return isinstance(data, dict) and ("module_adjacency" in data or "module_operations" in data)

    def read(self, data: dict, where: str) -> Cell:
        return Cell.of(data.get("module_adjacency"), data.get("module_operations"), None, where)

    def write(self, cell: Cell) -> str:
        return json.dumps({"module_adjacency": [list(r) for r in cell.matrix],
                           "module_operations": list(cell.ops)}) + "\n"


@CELL_FORMATS.register("pycls")
class UnnasYaml(CellFormat):
    """UnNAS's sample-based configs (configs/sample_based/nas_bench/...): the stem is the CIFAR one
    when TRAIN.DATASET names cifar, as pycls/models/nas_bench/model_builder.py decides."""

    def match(self, data) -> bool:
        return isinstance(data, dict) and isinstance(data.get("NAS"), dict) and "MATRIX" in data["NAS"]

    def read(self, data: dict, where: str) -> Cell:
        nas, model, train = (data.get(k) if isinstance(data.get(k), dict) else {} for k in ("NAS", "MODEL", "TRAIN"))
        if model.get("TYPE", "nas_bench") != "nas_bench":
            raise GenotypeError(f"{where}: MODEL.TYPE is {model['TYPE']!r}; UnNAS builds NAS.MATRIX with nas_bench")
        dataset = train.get("DATASET")
        stem = None if dataset is None else "cifar" if "cifar" in str(dataset) else "imagenet"
        sizes = {"width": nas.get("WIDTH"), "stacks": nas.get("NUM_STACKS"),
                 "modules_per_stack": nas.get("NUM_MODULES_PER_STACK"), "classes": model.get("NUM_CLASSES"),
                 "image_size": train.get("IM_SIZE"), "in_channels": model.get("INPUT_CHANNELS"), "stem": stem}
        return Cell.of(nas.get("MATRIX"), nas.get("OPS"), _sizes(sizes, where), where)

    def write(self, cell: Cell) -> str:
        """A config fragment laid out as UnNAS's own; the sizes the cell carries, else the benchmark's."""
        net = {"width": 128, "stacks": 3, "modules_per_stack": 3, **(cell.network or {})}
        lines = ["MODEL:", "  TYPE: nas_bench"]
        if "classes" in net:
            lines.append(f"  NUM_CLASSES: {net['classes']}")
        if "in_channels" in net:
            lines.append(f"  INPUT_CHANNELS: {net['in_channels']}")
        rows = [json.dumps(list(r)) for r in cell.matrix]
        lines += ["NAS:", "  MATRIX: [" + (",\n           ".join(rows)) + "]",
                  "  OPS: [" + ", ".join(f"'{o}'" for o in cell.ops) + "]",
                  f"  NUM_STACKS: {net['stacks']}", f"  NUM_MODULES_PER_STACK: {net['modules_per_stack']}",
                  f"  WIDTH: {net['width']}"]
        train = [f"  DATASET: {'cifar10' if net['stem'] == 'cifar' else 'imagenet'}"] if "stem" in net else []
        train += [f"  IM_SIZE: {net['image_size']}"] if "image_size" in net else []
        return "\n".join(lines + (["TRAIN:", *train] if train else [])) + "\n"


class BadCell(GenotypeError):
    """Text in a cell format holding a cell the benchmark refuses: `archsearch genotype` reports this
    rather than the other families' "not my format" (models/base.py `resolve_architecture`)."""

    recognised = True


def read_cell(data, where: str = "cell") -> Cell:
    """The cell parsed data holds, in whichever form it is."""
    for name in CELL_FORMATS.names():
        fmt = CELL_FORMATS.create(name)
        if fmt.match(data):
            try:
                return fmt.read(data, where)
            except GenotypeError as e:
                raise BadCell(str(e)) from None
    raise GenotypeError(f"{where}: not a NAS-Bench-101 cell: expected {{matrix, ops}}, "
                        "{module_adjacency, module_operations} or a config with NAS.MATRIX and NAS.OPS")


def parse_cell(text: str, where: str = "cell") -> Cell:
    """A cell from text: JSON, or YAML (parsed with `yaml.safe_load`)."""
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise GenotypeError(f"{where}: neither JSON nor YAML ({type(e).__name__})") from None
    except RecursionError:
        raise GenotypeError(f"{where}: nested too deeply to be a cell") from None
    return read_cell(data, where)


def read_cell_file(path: Path) -> Cell:
    path = Path(path)
    text = read_small_text(path, MAX_BYTES, "cell file", GenotypeError)
    return parse_cell(text, str(path))


def resolve_cell(ref: str) -> Cell:
    """A run directory (its genotype.json), a cell file, or cell text (JSON or YAML)."""
    path = Path(ref)
    try:
        if path.is_dir():
            return read_cell_file(path / "genotype.json")
        if path.is_file():
            return read_cell_file(path)
    except OSError:  # a name too long for the file system is cell text
        pass
    if ref.lstrip().startswith(("{", "[")) or "\n" in ref or ":" in ref:
        return parse_cell(ref, "cell text")
    raise GenotypeError(f"cell file not found: {ref}")


def write_cell(cell: Cell, fmt: str) -> str:
    """The cell as text in the named format (json, nasbench or pycls)."""
    return CELL_FORMATS.create(fmt).write(cell)
