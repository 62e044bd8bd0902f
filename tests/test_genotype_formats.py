"""Genotype text formats: archsearch JSON, the originals' Genotype(...) repr, pycls/UnNAS YAML."""
import collections
import csv
import json
import re

import pytest

from archsearch.cli import main
from archsearch.config import TrainConfig, load_config
from archsearch.errors import GenotypeError
from archsearch.models import create_family
from archsearch.presets import resolve_config
from archsearch.spaces.darts.cost import network_cost
from archsearch.spaces.darts.formats import (
    FORMATS,
    format_for_path,
    parse_genotype,
    read_genotype_file,
    resolve_genotype,
    write_genotype,
)
from archsearch.spaces.darts.genotype import Genotype, published_genotypes
from archsearch.studies.config import CorrelateConfig
from archsearch.studies.correlate import read_table

PUBLISHED = published_genotypes()
V2 = PUBLISHED["DARTS_V2"]

# DARTS_V2 as quark0/darts cnn/genotypes.py defines it (hand-written: list concats)
DARTS_V2_PY = (
    "DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])\n"
)

# DARTS_V1 in the multi-line layout of the hand-written cells there, concats as tuple and range
DARTS_V1_MULTILINE = """
genotypes.Genotype(
  normal = [
    ('sep_conv_3x3', 1),
    ('sep_conv_3x3', 0),
    ('skip_connect', 0),
    ('sep_conv_3x3', 1),
    ('skip_connect', 0),
    ('sep_conv_3x3', 1),
    ('sep_conv_3x3', 0),
    ('skip_connect', 2),
  ],
  normal_concat = (2, 3, 4, 5),
  reduce = [
    ('max_pool_3x3', 0),
    ('max_pool_3x3', 1),
    ('skip_connect', 2),
    ('max_pool_3x3', 0),
    ('max_pool_3x3', 0),
    ('skip_connect', 2),
    ('skip_connect', 2),
    ('avg_pool_3x3', 0),
  ],
  reduce_concat = range(2,6),
)
"""

# a pycls / UnNAS training config with a custom genotype (layout of UnNAS's sample_based configs)
PYCLS_CONFIG = """MODEL:
  TYPE: nas
  NUM_CLASSES: 10
NAS:
  GENOTYPE: custom
  CUSTOM_GENOTYPE:
  - - [avg_pool_3x3, 1]
    - [sep_conv_3x3, 1]
    - [sep_conv_5x5, 1]
    - [dil_conv_5x5, 1]
    - [none, 0]
    - [dil_conv_3x3, 2]
    - [dil_conv_3x3, 2]
    - [sep_conv_3x3, 1]
  - [2, 3, 4, 5]
  - - [sep_conv_3x3, 0]
    - [dil_conv_3x3, 0]
    - [skip_connect, 0]
    - [dil_conv_3x3, 0]
    - [none, 1]
    - [dil_conv_5x5, 1]
    - [dil_conv_3x3, 4]
    - [skip_connect, 4]
  - [2, 3, 4, 5]
  WIDTH: 16
  DEPTH: 20
OPTIM:
  BASE_LR: 0.1
"""
PYCLS_CELLS = {
    "normal": [["avg_pool_3x3", 1], ["sep_conv_3x3", 1], ["sep_conv_5x5", 1], ["dil_conv_5x5", 1], ["none", 0],
               ["dil_conv_3x3", 2], ["dil_conv_3x3", 2], ["sep_conv_3x3", 1]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["sep_conv_3x3", 0], ["dil_conv_3x3", 0], ["skip_connect", 0], ["dil_conv_3x3", 0], ["none", 1],
               ["dil_conv_5x5", 1], ["dil_conv_3x3", 4], ["skip_connect", 4]],
    "reduce_concat": [2, 3, 4, 5],
}


def _out(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archsearch: error: "), captured.err
    assert captured.out == ""
    return lines[0]


@pytest.mark.parametrize("fmt", ["json", "darts", "pycls"])
def test_every_published_genotype_survives_every_format(fmt, tmp_path):
    suffix = FORMATS.create(fmt).suffixes[0]
    for name, g in PUBLISHED.items():
        text = write_genotype(g, fmt)
        assert parse_genotype(text) == g, name
        (tmp_path / f"{name}{suffix}").write_text(text)
        assert read_genotype_file(tmp_path / f"{name}{suffix}") == g, name
        assert resolve_genotype(str(tmp_path / f"{name}{suffix}")) == g, name
        assert resolve_genotype(text) == g, name  # the same text given as a string


@pytest.mark.parametrize("via", ["darts", "pycls"])
def test_round_trips_through_another_format_give_the_same_json(via):
    for g in PUBLISHED.values():
        text = write_genotype(g, "json")
        assert write_genotype(parse_genotype(write_genotype(parse_genotype(text), via)), "json") == text


def test_darts_writer_prints_what_the_originals_namedtuple_prints():
    original = collections.namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
    for g in PUBLISHED.values():
        searched = original(normal=[tuple(p) for p in g.normal], normal_concat=range(2, 6),
                            reduce=[tuple(p) for p in g.reduce], reduce_concat=range(2, 6))
        assert write_genotype(g, "darts") == repr(searched) + "\n"
    odd = Genotype(V2.normal, (2, 4, 5), V2.reduce, (5,))
    assert "normal_concat=[2, 4, 5]" in write_genotype(odd, "darts")
    assert parse_genotype(write_genotype(odd, "darts")) == odd


def test_the_originals_repr_texts():
    assert parse_genotype(DARTS_V2_PY) == V2
    assert parse_genotype(DARTS_V1_MULTILINE) == PUBLISHED["DARTS_V1"]
    logged = "06/21 10:12:13 PM genotype = " + write_genotype(V2, "darts").replace(", ", ",")
    assert parse_genotype(logged) == V2  # a train_search.py log line, squeezed spaces and all
    positional = write_genotype(V2, "darts").replace("normal=", "").replace("normal_concat=", "")
    assert parse_genotype(positional.replace("reduce=", "").replace("reduce_concat=", "")) == V2


def test_pycls_config_and_bare_list():
    assert parse_genotype(PYCLS_CONFIG) == Genotype.from_dict(PYCLS_CELLS)
    bare = PYCLS_CONFIG.split("CUSTOM_GENOTYPE:\n")[1].split("  WIDTH")[0]
    assert parse_genotype(bare) == Genotype.from_dict(PYCLS_CELLS)
    flow = json.dumps([PYCLS_CELLS[k] for k in ("normal", "normal_concat", "reduce", "reduce_concat")])
    assert parse_genotype(flow.replace('"', "")) == Genotype.from_dict(PYCLS_CELLS)  # YAML flow style
    assert parse_genotype(flow) == Genotype.from_dict(PYCLS_CELLS)  # ... and as JSON


def test_file_suffixes_pick_output_formats():
    assert [format_for_path(p) for p in ("g.json", "g.yaml", "g.YML", "g.py", "g.txt", "g.bin")] == \
        ["json", "pycls", "pycls", "darts", "darts", None]


@pytest.mark.parametrize("text,message", [
    (write_genotype(V2, "darts").replace("('sep_conv_3x3', 1)", "('sep_conv_3x3', True)", 1),
     r"normal\[1\]: expected \[op_name, input_index\]"),
    (write_genotype(V2, "darts").replace("normal_concat=range(2, 6)", "normal_concat=[2, True]"),
     "normal_concat: expected a non-empty list of state indices"),
    (write_genotype(V2, "pycls").replace("[skip_connect, 0]", "[skip_connect, yes]", 1),
     r"normal\[5\]: expected \[op_name, input_index\]"),
    (write_genotype(V2, "darts").replace("'dil_conv_3x3', 2", "'dil_conv_3x3', 9"),
     r"normal\[7\]: node 3 can only take inputs 0..4, got 9"),
    (write_genotype(V2, "darts").replace("range(2, 6)", "range(2, 7)", 1), r"normal_concat: states must lie in"),
    (write_genotype(V2, "darts").replace("range(2, 6)", "range(0, 10000000000)", 1), "more than 64 states"),
    (write_genotype(V2, "pycls").replace("sep_conv_3x3", "conv_9x9", 1), "unknown operation 'conv_9x9'"),
])
def test_every_format_gets_the_same_validation(text, message):
    with pytest.raises(GenotypeError, match=message):
        parse_genotype(text)


def test_command_line_repr_string_and_pricing_defaults(capsys):
    assert main(["genotype", DARTS_V2_PY]) == 0
    out = _out(capsys)
    cifar, imagenet = network_cost(V2, 36, 20, 10), network_cost(V2, 48, 14, 1000, 3, 224, True)
    assert f"CIFAR network (C=36, 20 cells): {cifar.params / 1e6:.3f}M params, {cifar.macs / 1e6:.0f}M" in out
    assert f"ImageNet network (C=48, 14 cells): {imagenet.params / 1e6:.3f}M params, {imagenet.macs / 1e6:.0f}M" in out
    assert main(["genotype", "DARTS_V2"]) == 0
    assert _out(capsys) == out


def test_to_darts_round_trip_through_the_cli(tmp_path, capsys):
    for name, g in PUBLISHED.items():
        assert main(["genotype", name, "--to", "darts"]) == 0
        darts = _out(capsys)
        assert main(["genotype", darts, "--to", "json"]) == 0
        assert _out(capsys) == write_genotype(g, "json")
        assert main(["genotype", darts, "--to", "pycls", "--output", str(tmp_path / "g.yaml")]) == 0
        assert "g.yaml" in _out(capsys)
        assert main(["genotype", str(tmp_path / "g.yaml"), "--output", str(tmp_path / "g.json")]) == 0
        capsys.readouterr()
        assert (tmp_path / "g.json").read_text() == write_genotype(g, "json")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize("flags,args", [
    (["--channels", "16", "--cells", "8", "--classes", "7", "--image-size", "28", "--in-channels", "1"],
     (16, 8, 7, 1, 28, False)),
    (["--imagenet", "--channels", "64", "--classes", "100", "--image-size", "128"], (64, 14, 100, 3, 128, True)),
    (["--cells", "11"], (36, 11, 10, 3, 32, False)),
])
def test_pricing_flags_equal_network_cost(flags, args, capsys):
    assert main(["genotype", "PC_DARTS_cifar", *flags]) == 0
    line = _out(capsys).splitlines()[-1]
    params, macs = re.search(r": ([\d.]+)M params, ([\d.]+)M mult-adds$", line).groups()
    cost = network_cost(PUBLISHED["PC_DARTS_cifar"], *args)
    assert params == f"{cost.params / 1e6:.3f}"
    assert float(macs) == pytest.approx(cost.macs / 1e6, abs=0.5)
    assert f"C={args[0]}, {args[1]} cells" in line and ("ImageNet" in line) == args[5]


@pytest.mark.parametrize("flags,message", [
    (["--channels", "0"], "channels must be at least 1, got 0"),
    (["--cells", "-3"], "cells must be at least 1"),
    (["--classes", "0"], "classes must be at least 1"),
    (["--in-channels", "0"], "in_channels must be at least 1"),
    (["--imagenet", "--channels", "47"], "even channel count"),
    (["--image-size", "3"], "image size 3 is too small"),
    (["--imagenet", "--image-size", "16"], "at least 32"),
    (["--to", "darts", "--channels", "16"], "--to/--output write the genotype only"),
    (["--output", "g.bin"], "no format goes with that suffix"),
    (["--to", "xml"], "unknown genotype format 'xml'"),
])
def test_bad_sizes_and_options_are_one_line_errors(flags, message, capsys):
    assert main(["genotype", "DARTS_V2", *flags]) == 2
    assert message in _one_error_line(capsys)


BAD_FILES = {
    "garbage.txt": ("this is not { a genotype", "not in any known genotype format (tried darts, json, pycls)"),
    "wrong_keys.json": ('{"normal_cell": [], "reduce_cell": []}', "as archsearch JSON: expected an object with keys"),
    "truncated.json": ('{"normal": [["sep', "as archsearch JSON: not valid JSON"),
    "missing.json": ('{"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]]}', "missing key(s) normal_concat"),
    "other.yaml": ("MODEL:\n  TYPE: nas\nNAS:\n  GENOTYPE: unnas_imagenet_rot\n  WIDTH: 42\n",
                   "as pycls/UnNAS YAML: NAS.GENOTYPE is 'unnas_imagenet_rot'"),
    "three.yaml": ("- [[sep_conv_3x3, 0]]\n- [2]\n- [[sep_conv_3x3, 0]]\n",
                   "as pycls/UnNAS YAML: expected a 4-item list"),
    "ignored.yaml": ("NAS:\n  GENOTYPE: darts_v2\n  CUSTOM_GENOTYPE: []\n", "pycls ignores NAS.CUSTOM_GENOTYPE"),
    "two.py": (DARTS_V2_PY + DARTS_V2_PY, "expected one Genotype(...) expression, found 2 statements"),
    "call.py": ("print(1)", "as a DARTS Genotype(...) repr: expected a Genotype(...) expression, got print(1)"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_genotype_files_are_one_line_errors(name, tmp_path, capsys):
    text, message = BAD_FILES[name]
    (tmp_path / name).write_text(text)
    assert main(["genotype", str(tmp_path / name)]) == 2
    line = _one_error_line(capsys)
    assert message in line and name in line


def test_binary_and_missing_files(tmp_path, capsys):
    (tmp_path / "g.json").write_bytes(bytes(range(256)) * 4)
    assert main(["genotype", str(tmp_path / "g.json")]) == 2
    assert "not a text file" in _one_error_line(capsys)
    assert main(["genotype", str(tmp_path / "nope.yaml")]) == 2
    assert "genotype file not found" in _one_error_line(capsys)
    assert main(["genotype", "NO_SUCH_GENOTYPE"]) == 2
    assert "NO_SUCH_GENOTYPE" in _one_error_line(capsys)


@pytest.mark.parametrize("call", ["__import__('pathlib').Path({marker!r}).touch()",
                                  "open({marker!r}, 'w')", "[__import__('pathlib').Path({marker!r}).touch()]"])
def test_repr_calls_other_than_range_are_refused_unexecuted(call, tmp_path, capsys):
    marker = str(tmp_path / "executed")
    text = write_genotype(V2, "darts").replace("range(2, 6)", call.format(marker=marker), 1)
    (tmp_path / "evil.py").write_text(text)
    for ref in (str(tmp_path / "evil.py"), text):
        assert main(["genotype", ref]) == 2
        assert "only strings, integers, lists, tuples and range(...) are read" in _one_error_line(capsys)
    assert not (tmp_path / "executed").exists()


def test_long_strings_are_text_not_file_names(capsys):
    assert main(["genotype", "x" * 100_000]) == 2
    assert len(_one_error_line(capsys)) < 400
    long_repr = write_genotype(V2, "darts").replace(", ", ",      ")  # > 255 characters: no file name
    assert len(long_repr) > 500 and main(["genotype", long_repr]) == 0
    capsys.readouterr()
    assert main(["genotype", "[" * 100_000]) == 2
    _one_error_line(capsys)


def test_train_genotype_option_reaches_the_model_family_in_every_format():
    family = create_family("darts-cifar")
    for text in (write_genotype(V2, "json"), write_genotype(V2, "pycls"), write_genotype(V2, "darts"),
                 "[[[sep_conv_3x3, 0], [sep_conv_3x3, 1]], [2], [[max_pool_3x3, 0], [max_pool_3x3, 1]], [2]]"):
        cfg = load_config(resolve_config("train_fashionmnist"), [f"model.genotype={json.dumps(text)}"],
                          schema=TrainConfig)
        assert cfg.model.genotype == text
        assert family.resolve(cfg.model.genotype) == parse_genotype(text)


def test_correlate_table_reads_any_format(tmp_path):
    table = tmp_path / "t.csv"
    gs = list(PUBLISHED.values())[:3]
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["genotype", "accuracy"])
        for g, fmt, acc in zip(gs, ("json", "darts", "pycls"), (0.5, 0.7, 0.6)):
            w.writerow([write_genotype(g, fmt), acc])
    cfg = CorrelateConfig()
    cfg.table.path = str(table)
    assert read_table(cfg) == [(gs[0], 0.5), (gs[2], 0.6), (gs[1], 0.7)]


def test_train_takes_a_yaml_list_on_the_command_line(tmp_path):
    text = write_genotype(PUBLISHED["PC_DARTS_cifar"], "pycls").split("CUSTOM_GENOTYPE:\n")[1]  # the bare list
    tiny = ["data.name=generated", "data.generated.image_size=16", "data.generated.channels=1",
            "data.generated.num_classes=4", "data.generated.num_samples=32", "data.batch_size=8",
            "data.val_batch_size=16", "model.init_channels=4", "model.layers=3", "data.subset=0",
            "optim.epochs=1", "steps_per_epoch=1", "eval_batches=1"]
    out = tmp_path / "run"
    assert main(["train", *tiny, "--genotype", text, "--out", str(out), "--no-progress"]) == 0
    assert Genotype.load(out / "genotype.json") == PUBLISHED["PC_DARTS_cifar"]


# -- mobile (SGNAS) architectures ---------------------------------------------------------------

def _mobile_arch_file(tmp_path):
    """A mobile architecture as a run's genotype.json holds it (space.arch_to_dict) and as
    `archsearch generate` wraps it; the space and the architecture."""
    import random

    from archsearch.config import SpaceConfig, component
    from archsearch.spaces import create_space

    space = create_space(component(SpaceConfig, "mobile-unified", layout="cifar", stem_channels=4, first_channels=4,
                                   head_channels=16, widths=[4, 8, 8], depths=[1, 2, 1], strides=[1, 2, 1]))
    space.bind(3, 8)
    arch = space.sample(random.Random(3))
    d = space.arch_to_dict(arch)
    (tmp_path / "genotype.json").write_text(json.dumps(d))
    (tmp_path / "flops_1.json").write_text(json.dumps({"target_flops_M": 1.0, "architecture": d}))
    return space, arch


def test_a_mobile_architecture_is_shown_and_priced_as_its_built_network(tmp_path, capsys):
    from torch import nn

    from archsearch.models.cost import count_macs, count_params
    from archsearch.models.mobile import MobileModelConfig

    space, arch = _mobile_arch_file(tmp_path)
    head = lambda c: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 5))  # noqa: E731
    family = create_family("mobile")
    recorded = family.resolve(str(tmp_path / "genotype.json"))  # with the layout it was searched in
    net = family.build(recorded, MobileModelConfig(), 1, 12, head)
    for ref in (tmp_path / "genotype.json", tmp_path / "flops_1.json", tmp_path):  # a run directory too
        assert main(["genotype", str(ref), "--image-size", "12", "--in-channels", "1", "--classes", "5"]) == 0
        layers, summary, priced = _out(capsys).splitlines()
        assert layers == f"layers  {arch.short()}"
        assert summary.startswith(f"mean expansion {sum(arch.expansions) / len(arch.expansions):.2f}, kernels ")
        assert priced == (f"stand-alone network (cifar layout, 12px, 5 classes, 1 input channel): "
                          f"{count_params(net) / 1e6:.3f}M params, {count_macs(net, 1, 12) / 1e6:.3f}M mult-adds")
    assert main(["genotype", str(tmp_path / "genotype.json")]) == 0  # CIFAR input unless told otherwise
    assert _out(capsys).splitlines()[-1].startswith("stand-alone network (cifar layout, 32px, 10 classes): ")


def test_a_mobile_architecture_converts_to_json_only(tmp_path, capsys):
    space, arch = _mobile_arch_file(tmp_path)
    assert main(["genotype", str(tmp_path / "flops_1.json"), "--output", str(tmp_path / "a.json")]) == 0
    capsys.readouterr()
    again = create_family("mobile").resolve(str(tmp_path / "a.json"))
    assert again == arch and again.layout == space.arch_to_dict(arch)["layout"]
    for flags, message in ((["--to", "darts"], "written as json only, not 'darts'"),
                           (["--channels", "16"], "--channels does not apply to a mobile architecture"),
                           (["--image-size", "0"], "image_size must be at least 1")):
        assert main(["genotype", str(tmp_path / "genotype.json"), *flags]) == 2
        assert message in _one_error_line(capsys)
