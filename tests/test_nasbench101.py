"""The NAS-Bench-101 space and network (docs/methods/nasbench101.md).

Hashes are the benchmark's own (graph_util.hash_module, checked against google-research/nasbench
on 200 sampled cells and their permuted copies when this was written); parameter counts of the
analytic formula equal the network built on the meta device for every sampled cell, and the
benchmark's published count for its Inception-like example cell.
"""
from __future__ import annotations

import json
import random

import pytest
import torch

from archsearch.cli import main
from archsearch.config import ModelConfig, SpaceConfig, component
from archsearch.data.base import DatasetInfo
from archsearch.errors import ConfigError, GenotypeError
from archsearch.models import create_family, resolve_architecture
from archsearch.models.cost import count_macs, count_params
from archsearch.objectives.supervised import classifier_head
from archsearch.spaces import create_space
from archsearch.spaces.nasbench101.cell import MAX_EDGES, MAX_VERTICES, OPS, Cell, sample_cells
from archsearch.spaces.nasbench101.cost import Layout, network_cost, vertex_channels
from archsearch.spaces.nasbench101.formats import MAX_BYTES, parse_cell, write_cell

C3, C1, MP = OPS
INCEPTION = Cell.of([[0, 1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0, 0],
                     [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
                    ["input", C1, C3, C3, C3, MP, "output"])
RESNET = Cell.of([[0, 1, 0, 0, 1], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
                 ["input", C3, C3, C3, "output"])
# graph_util.hash_module of google-research/nasbench, run on these cells
HASHES = {"inception": "28cfc7874f6d200472e1a9dcd8650aa0", "resnet": "2d1409194cea3350cb491374aada43df",
          "chain": "53cee42601ad14d661bb6878031d6acb", "direct": "043721b9c7fe8c5fad811d47d83132ec"}
CHAIN = Cell.of([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", MP, "output"])
DIRECT = Cell.of([[0, 1], [0, 0]], ["input", "output"])


def permuted(cell: Cell, order: list[int]) -> Cell:
    """The same graph with interior vertex order[i] moved to position i + 1 (kept upper triangular)."""
    full = [0, *order, cell.vertices - 1]
    return Cell.of([[cell.matrix[a][b] for b in full] for a in full], [cell.ops[a] for a in full])


# -- cells ------------------------------------------------------------------------------------------
def test_hashes_are_the_benchmarks():
    for name, cell in {"inception": INCEPTION, "resnet": RESNET, "chain": CHAIN, "direct": DIRECT}.items():
        assert cell.spec_hash() == HASHES[name], name


def test_hash_ignores_vertex_order_and_pruned_vertices():
    # Inception: vertices 1, 2, 5 all read the input; any order of them keeps the DAG ordered
    for order in ([2, 1, 3, 4, 5], [5, 2, 1, 3, 4], [3, 4, 5, 1, 2]):
        assert permuted(INCEPTION, order).spec_hash() == HASHES["inception"]
    # an extra vertex fed by nothing hangs off the graph: pruned, same network, same hash
    dangling = Cell.of([[0, 1, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
                       ["input", C3, C1, C3, "output"])
    assert dangling.pruned.vertices == 4 and dangling.vertices == 5
    assert dangling.spec_hash() == Cell.of([[0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
                                           ["input", C3, C3, "output"]).spec_hash()
    assert RESNET.spec_hash() != Cell.of(RESNET.matrix, ["input", C3, C1, C3, "output"]).spec_hash()


@pytest.mark.parametrize("matrix, ops, message", [
    ([[0, 1], [0, 0], [0, 0]], ["input", "output"], "square"),
    ([[0, 1], [0, 0]], ["input", C3, "output"], "2x2 matrix but 3 op labels"),
    ([[0, 1], [1, 0]], ["input", "output"], "upper triangular"),
    ([[1, 1], [0, 0]], ["input", "output"], "upper triangular"),
    ([[0, 2], [0, 0]], ["input", "output"], "other than 0 and 1"),
    ([[0, True], [0, 0]], ["input", "output"], "other than 0 and 1"),
    ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv5x5", "output"], "unknown op 'conv5x5'"),
    ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [C3, C3, "output"], "first label must be 'input'"),
    ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", C3, C3], "last 'output'"),
    ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], ["input", C3, "output"], "no path"),
    ([[0]], ["input"], "at least the input and output"),
    ([[int(j > i) for j in range(7)] for i in range(7)], ["input", *[C3] * 5, "output"], "21 edges"),
    ([[int(j == i + 1) for j in range(8)] for i in range(8)], ["input", *[C3] * 6, "output"], "8 vertices"),
    ("not a matrix", ["input", "output"], "non-empty list of rows"),
])
def test_invalid_cells_are_one_line_errors(matrix, ops, message):
    with pytest.raises(GenotypeError, match=message) as e:
        Cell.of(matrix, ops)
    assert "\n" not in str(e.value)


def test_sampling_is_seeded_valid_and_distinct():
    cells = sample_cells(60, random.Random(0))
    assert cells == sample_cells(60, random.Random(0))
    assert len({c.spec_hash() for c in cells}) == 60
    for c in cells:
        assert c.vertices == MAX_VERTICES and c.pruned.vertices <= MAX_VERTICES and c.pruned.edges <= MAX_EDGES
        Cell.of(c.matrix, c.ops)


def test_vertex_channels_split_the_output_and_take_the_widest_consumer():
    # vertices 1, 2, 3 feed the output (13 = 5 + 4 + 4, the remainder to the first); vertex 1 also feeds 3
    cell = Cell.of([[0, 1, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
                   ["input", C1, C3, C3, "output"])
    assert vertex_channels(5, 13, cell) == [5, 5, 4, 4, 13]
    # vertex 1 feeds only vertex 3 and the widest of its consumers sets its width
    only_inner = Cell.of([[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
                         ["input", C1, C3, C3, "output"])
    assert vertex_channels(5, 13, only_inner) == [5, 6, 7, 6, 13]
    assert vertex_channels(5, 13, DIRECT) == [5, 13]
    with pytest.raises(ConfigError, match="3 vertices needs at least 3 channels"):
        vertex_channels(5, 2, cell)


# -- the network and its cost -------------------------------------------------------------------------
def built(cell: Cell, family: str, classes: int, size: int, in_ch: int = 3, **sizes) -> tuple[int, int]:
    cfg = component(ModelConfig, family, **sizes)
    with torch.device("meta"):
        net = create_family(family).build(cell, cfg, in_ch, size, lambda c: classifier_head(c, classes))
    return count_params(net), count_macs(net, in_ch, size)


def analytic(cell: Cell, family: str, classes: int, size: int, in_ch: int = 3, **sizes) -> tuple[int, int]:
    cfg = component(ModelConfig, family, **sizes)
    layout = Layout(cfg.width, cfg.stacks, cfg.modules_per_stack, family.endswith("imagenet"))
    cost = network_cost(cell, layout, classes, in_ch, size)
    return cost.params, cost.macs


def test_the_benchmarks_inception_cell_has_its_published_parameter_count():
    # NASBench.ipynb: trainable_parameters 2694282 for this cell (CIFAR, width 128, 3 stacks x 3 cells)
    assert built(INCEPTION, "nasbench101", 10, 32) == analytic(INCEPTION, "nasbench101", 10, 32)
    assert analytic(INCEPTION, "nasbench101", 10, 32)[0] == 2694282


def _sizes(rng: random.Random, family: str) -> dict:
    """A small network on an odd or even side, either stem: the cell rules do not depend on the depth."""
    imagenet = family.endswith("imagenet")
    return dict(classes=rng.randint(2, 12), size=rng.choice([9, 17, 31, 33, 64] if imagenet else [5, 7, 9, 16, 21]),
                in_ch=rng.choice([1, 3]), width=rng.choice([5, 6, 8, 13]), stacks=rng.choice([1, 2, 3]),
                modules_per_stack=1)


@pytest.mark.parametrize("family", ["nasbench101", "nasbench101-imagenet"])
def test_analytic_cost_equals_the_built_network_for_sampled_cells(family):
    rng = random.Random(family)
    for cell in sample_cells(150, rng) + [INCEPTION, RESNET, CHAIN, DIRECT]:
        sizes = _sizes(rng, family)
        assert analytic(cell, family, **sizes) == built(cell, family, **sizes), (cell.to_dict(), sizes)


@pytest.mark.slow
@pytest.mark.parametrize("family, classes, size", [("nasbench101", 10, 32), ("nasbench101", 10, 31),
                                                   ("nasbench101-imagenet", 1000, 224),
                                                   ("nasbench101-imagenet", 1000, 97)])
def test_analytic_cost_equals_the_full_size_network(family, classes, size):
    for cell in sample_cells(40, random.Random(size)):
        assert analytic(cell, family, classes, size) == built(cell, family, classes, size), cell.to_dict()


def test_network_runs_with_odd_sizes_and_truncates_wider_inputs():
    torch.manual_seed(0)
    cfg = component(ModelConfig, "nasbench101", width=7, stacks=3, modules_per_stack=1)
    for cell in [INCEPTION, RESNET, DIRECT, *sample_cells(4, random.Random(5))]:
        net = create_family("nasbench101").build(cell, cfg, 1, 7, lambda c: classifier_head(c, 3))
        assert net(torch.randn(2, 1, 7, 7)).shape == (2, 3)
        assert net.cells[-1].channels[-1] == 28 and net.cells[1].__class__.__name__ == "MaxPool2d"
    bn = net.stem[0][1]
    assert (bn.momentum, bn.eps) == (0.003, 1e-5)  # the benchmark's decay 0.997


def test_sizes_the_network_cannot_take_are_config_errors():
    with pytest.raises(ConfigError, match="4 vertices needs at least 4 channels"):
        built(INCEPTION, "nasbench101", 10, 8, width=2)
    with pytest.raises(ConfigError, match="drop path"):
        component(ModelConfig, "nasbench101", drop_path=0.1).check("model")


# -- formats, the space, the command ----------------------------------------------------------------
UNNAS_YAML = """\
MODEL:
  TYPE: nas_bench
  NUM_CLASSES: 1000
NAS:
  MATRIX: [[0, 1, 0, 0, 1],
           [0, 0, 1, 0, 0],
           [0, 0, 0, 1, 0],
           [0, 0, 0, 0, 1],
           [0, 0, 0, 0, 0]]
  OPS: ['input', 'conv3x3-bn-relu', 'conv3x3-bn-relu', 'conv3x3-bn-relu', 'output']
  NUM_STACKS: 3
  NUM_MODULES_PER_STACK: 4
  WIDTH: 128
TRAIN:
  DATASET: imagenet
  IM_SIZE: 224
"""


def test_formats_read_and_write_back():
    cell = parse_cell(UNNAS_YAML)
    assert cell == RESNET
    assert cell.network == {"width": 128, "stacks": 3, "modules_per_stack": 4, "classes": 1000, "image_size": 224,
                            "stem": "imagenet"}
    for fmt in ("json", "nasbench", "pycls"):
        back = parse_cell(write_cell(cell, fmt))
        assert back == cell
        assert back.network == (None if fmt == "nasbench" else cell.network), fmt
    spec = parse_cell(json.dumps({"module_adjacency": [list(r) for r in INCEPTION.matrix],
                                  "module_operations": list(INCEPTION.ops)}))
    assert spec == INCEPTION and spec.network is None
    with pytest.raises(ConfigError, match="cell format"):
        write_cell(cell, "darts")


@pytest.mark.parametrize("text, message", [
    ("{}", "not a NAS-Bench-101 cell"),
    ('{"matrix": [[0, 1], [0, 0]]}', "ops must be a list"),
    ('{"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"], "network": {"width": 0}}', "positive integer"),
    ("NAS: {MATRIX: [[0, 1], [0, 0]], OPS: [input, output]}\nMODEL: {TYPE: darts}", "MODEL.TYPE is 'darts'"),
    ("!!python/object/apply:os.system ['true']", "neither JSON nor YAML"),
    ("NAS: {MATRIX: [[0, 1], [0, 0]], OPS: [input, output], WIDTH: yes}", "positive integer"),
])
def test_bad_files_are_one_line_errors(text, message):
    with pytest.raises(GenotypeError, match=message):
        parse_cell(text)


def test_large_files_are_refused_before_parsing(tmp_path):
    big = tmp_path / "big.json"
    big.write_text(" " * (MAX_BYTES + 1))
    with pytest.raises(GenotypeError, match="too large"):
        resolve_architecture(str(big))


def test_space_samples_prices_and_has_no_supernet():
    space = create_space(component(SpaceConfig, "nasbench101"))
    cell = space.sample(random.Random(0))
    assert space.arch_from_dict(json.loads(json.dumps(space.arch_to_dict(cell)))) == cell
    for call in (space.arch_shapes, space.edge_groups, lambda: space.build_supernet(3, 32, None),
                 lambda: space.derive({}), lambda: space.one_hot(cell)):
        with pytest.raises(ConfigError, match="no weight-sharing supernet"):
            call()
    assert space.weight_panels("normal") is None
    cifar = DatasetInfo("cifar10", 3, 32, 10, (0.0,) * 3, (1.0,) * 3)
    assert round(space.cost(INCEPTION, cifar)["params_M"] * 1e6) == 2694282
    assert space.describe(RESNET)["cell"] == {"vertices": 5, "edges": 5, "hash": HASHES["resnet"],
                                              "ops": {C3: 3, C1: 0, MP: 0}}
    import matplotlib.pyplot as plt

    plt.close(space.plot_architecture(INCEPTION, "inception"))


def test_genotype_command_shows_and_prices_at_the_files_sizes(tmp_path, capsys):
    path = tmp_path / "000907.yaml"
    path.write_text(UNNAS_YAML)
    family, cell = resolve_architecture(str(path))
    assert create_family("nasbench101").__class__ is family.__class__ and cell == RESNET
    assert main(["genotype", str(path)]) == 0
    out = capsys.readouterr().out
    assert HASHES["resnet"] in out and "sizes the file states: ImageNet stem (UnNAS), width 128, 3 stacks x 4" in out
    assert main(["genotype", str(path), "--channels", "64", "--classes", "10"]) == 0
    assert "width 64" in capsys.readouterr().out
    assert main(["genotype", str(path), "--to", "nasbench"]) == 0
    assert json.loads(capsys.readouterr().out)["module_operations"][1] == C3


def test_a_bad_cell_file_reports_the_cells_error(tmp_path, capsys):
    path = tmp_path / "cell.json"
    path.write_text('{"matrix": [[0, 1], [1, 0]], "ops": ["input", "output"]}')
    assert main(["genotype", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "upper triangular" in err and "\n" not in err
