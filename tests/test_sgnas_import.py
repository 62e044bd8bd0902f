"""`archsearch import sgnas` on synthetic files in the released layout, and `generate` without data.

The authors' files are not in the repository: the checkpoint and prior pool here are made in the
released layout (eric8607242/SGNAS: utils/generator.py keys, {"model": state_dict} saved from CUDA,
prior_pool.json of 19 x 24 one-hot rows). The reference forward and decoding below are written
from that layout, independently of archsearch's generator and space.
"""
from __future__ import annotations

import json
import math
import random
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from archsearch.cli import main
from archsearch.config import DataConfig, SpaceConfig, component, load_config
from archsearch.data import static_dataset_info
from archsearch.data.folders import ImageFolderSource
from archsearch.errors import ConfigError
from archsearch.spaces import create_space
from archsearch.spaces.mobile.arch import SKIP

RELEASED_SHAPES = {
    "hc_head.0.conv.weight": (32, 10, 3, 3), "hc_head.1.conv.weight": (32, 32, 3, 3),
    "hc_head.2.conv.weight": (32, 32, 3, 3), "bb_head.0.conv.weight": (32, 1, 3, 3),
    "bb_head.1.conv.weight": (32, 32, 3, 3), "head.conv.weight": (32, 32, 3, 3),
    "body.block1.conv.weight": (32, 32, 3, 3), "body.block2.conv.weight": (32, 32, 3, 3),
    "body.block3.conv.weight": (32, 32, 3, 3), "tail.0.weight": (1, 32, 3, 3), "tail.0.bias": (1,),
}
COLUMN = {3: 0, 5: 1, 7: 2, SKIP: 3}  # the released column order k3, k5, k7, skip
LOW, HIGH = 270.0, 450.0


def random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * (math.sqrt(2.0 / (9 * s[0])) if len(s) == 4 else 0.1)
            for k, s in RELEASED_SHAPES.items()}


def save_released(path, state, extra=None) -> None:
    """As the authors saved it: {"model": ..., "optimzier": ...} with CUDA storages."""
    ckpt = {"model": state, "optimzier": {"state": {}, "param_groups": [{"lr": 1e-3}]}, **(extra or {})}
    with mock.patch.object(torch.serialization, "location_tag", lambda storage: "cuda:0"):
        torch.save(ckpt, path)


def one_hot_row(layer) -> list[float]:
    row = [0.0] * 24
    for b, op in enumerate(layer):
        row[4 * b + COLUMN[op]] = 1.0
    return row


def random_prior(rng: random.Random) -> list[tuple[int, ...]]:
    """The authors' prior form: e in 2..6 kernels first (in drawn order), skips last."""
    layers = []
    for _ in range(19):
        e = rng.randint(2, 6)
        layers.append(tuple(rng.choice((3, 5, 7)) for _ in range(e)) + (SKIP,) * (6 - e))
    return layers


def write_pool(path, pool: dict[str, list]) -> None:
    path.write_text(json.dumps({k: [one_hot_row(layer) for layer in v] for k, v in pool.items()}))


def released_forward(state, prior_rows: torch.Tensor, target: float) -> torch.Tensor:
    """SinGenerator's forward in the released key layout: (19, 24) logits."""
    def conv_relu(x, key):
        return torch.relu(F.conv2d(x, state[key], padding=1))

    hc = torch.full((1, 10, 19, 24), (target - LOW) / (HIGH - LOW))
    for i in range(3):
        hc = conv_relu(hc, f"hc_head.{i}.conv.weight")
    y = prior_rows.view(1, 1, 19, 24)
    for i in range(2):
        y = conv_relu(y, f"bb_head.{i}.conv.weight")
    f = y + hc
    h = conv_relu(f, "head.conv.weight")
    for i in (1, 2, 3):
        h = conv_relu(h, f"body.block{i}.conv.weight")
    return F.conv2d(h + f, state["tail.0.weight"], state["tail.0.bias"], padding=1).view(19, 24)


def released_decode(logits: torch.Tensor) -> list[list[int]]:
    """decode_arch_param: per group the argmax (kernels only in group 0), skips dropped, order kept."""
    out = []
    for row in logits:
        kernels = []
        for b in range(6):
            group = row[4 * b:4 * b + 4]
            j = int(group[:3].argmax()) if b == 0 else int(group.argmax())
            if j < 3:
                kernels.append((3, 5, 7)[j])
        out.append(kernels)
    return out


@pytest.fixture
def no_data(monkeypatch, tmp_path):
    """Any attempt to read an image folder fails the test; no dataset lies where one could look."""
    def touched(self, *a, **k):
        raise AssertionError("the data folders were touched")

    monkeypatch.setattr(ImageFolderSource, "root", touched)
    monkeypatch.setattr(ImageFolderSource, "native_info", touched)
    monkeypatch.setenv("ARCHSEARCH_DATA", str(tmp_path / "no-data"))


def released_files(tmp_path, state=None, pool=None):
    ckpt, prior = tmp_path / "best_avg.pth", tmp_path / "prior_pool.json"
    save_released(ckpt, random_state() if state is None else state)
    write_pool(prior, pool or {"360": random_prior(random.Random(0))})
    return ckpt, prior


# -- the flow ----------------------------------------------------------------------------------
def test_import_then_generate_three_targets_without_any_dataset(tmp_path, no_data, capsys):
    ckpt, prior = released_files(tmp_path)
    if not torch.cuda.is_available():  # the synthetic file really is tagged CUDA
        with pytest.raises(RuntimeError):
            torch.load(ckpt, weights_only=True)
    run = tmp_path / "run"
    assert main(["import", "sgnas", str(ckpt), str(prior), "--out", str(run)]) == 0
    assert "decoding released" in capsys.readouterr().out
    assert {p.name for p in run.iterdir()} == {"config.yaml", "checkpoint.pt", "import.json"}
    assert main(["generate", str(run), "--flops", "365", "--flops", "320", "--flops", "275"]) == 0
    out = capsys.readouterr().out
    assert out.count("target ") == 3
    for t in ("365", "320", "275"):
        rec = json.loads((run / "generated" / f"flops_{t}.json").read_text())
        arch = rec["architecture"]
        assert rec["decoding"] == "released" and rec["generator"] == "best"
        assert len(arch["layers"]) == 19 and all(len(layer) == 6 for layer in arch["layers"])
        for layer, e, ks in zip(arch["layers"], arch["expansions"], arch["kernels"]):
            assert layer[0] != "skip" and set(layer) <= {3, 5, 7, "skip"}
            assert ks == [op for op in layer if op != "skip"] and e == len(ks) >= 1
        assert rec["flops_M"] > 40.9 and rec["se_params_M"] > rec["params_M"] > 0
        assert len(rec["timm"]["arch_def"]) == 20 and rec["timm"]["exact"]
    record = json.loads((run / "import.json").read_text())
    assert record["keys"]["tail.0.bias"] == "generator.tail.bias" and list(record["priors"]) == ["360"]


def test_imported_generator_computes_the_released_forward_and_decoding(tmp_path, no_data):
    from archsearch.strategies.sgnas.generate import load_generator

    state = random_state(3)
    rows = random_prior(random.Random(5))
    ckpt, prior = released_files(tmp_path, state, {"360": rows})
    run = tmp_path / "run"
    assert main(["import", "sgnas", str(ckpt), str(prior), "--out", str(run)]) == 0
    strategy, _space, info, _step = load_generator(run)
    assert (info.in_channels, info.image_size, info.num_classes) == (3, 224, 1000)
    prior_rows = torch.tensor([one_hot_row(layer) for layer in rows])
    targets = [275.0, 333.3, 440.0]
    ours = strategy.logits(torch.tensor(targets, dtype=torch.float64)).view(3, 19, 24)
    archs = strategy.generate(targets)
    for t, lg, arch in zip(targets, ours, archs):
        ref = released_forward(state, prior_rows, t)
        finite = torch.isfinite(lg)
        assert (~finite).sum() == 19 and not finite.view(19, 6, 4)[:, 0, 3].any()  # only sub-block 0's skip
        assert torch.allclose(lg[finite], ref[finite], atol=1e-5)
        assert arch.kernels == released_decode(ref)


def test_an_identity_generator_returns_the_nearest_prior_in_sub_block_order(tmp_path, no_data):
    """bb_head and tail pass the prior through, everything else is zero: logits = the prior."""
    state = {k: torch.zeros(s) for k, s in RELEASED_SHAPES.items()}
    state["bb_head.0.conv.weight"][0, 0, 1, 1] = 1.0
    state["bb_head.1.conv.weight"][0, 0, 1, 1] = 1.0
    state["tail.0.weight"][0, 0, 1, 1] = 1.0
    low = [(7, 3, 3, 5, SKIP, SKIP)] * 19
    high = [(5, 7, 3, 7, 3, 3)] * 19
    ckpt, prior = released_files(tmp_path, state, {"300": low, "420": high})
    run = tmp_path / "run"
    assert main(["import", "sgnas", str(ckpt), str(prior), "--out", str(run),
                 "--config", "sgnas_imagenet"]) == 0
    assert main(["generate", str(run), "--flops", "310", "--flops", "360", "--flops", "400"]) == 0
    got = {t: json.loads((run / "generated" / f"flops_{t}.json").read_text())["architecture"]
           for t in ("310", "360", "400")}
    assert got["310"]["kernels"] == [[7, 3, 3, 5]] * 19 and got["310"]["layers"][0] == [7, 3, 3, 5, "skip", "skip"]
    assert got["360"]["kernels"] == [[7, 3, 3, 5]] * 19  # a tie: the first key, as `get_prior`'s argmin
    assert got["400"]["kernels"] == [[5, 7, 3, 7, 3, 3]] * 19


# -- the decoding rules --------------------------------------------------------------------------
def imagenet_space(**mobile):
    sp = create_space(component(SpaceConfig, "mobile-unified", **mobile))
    sp.bind(3, 224)
    return sp


def test_released_decoding_keeps_sub_block_order_and_forced_decoding_sorts():
    layer = (7, 3, SKIP, 3, 5, SKIP)
    weights = {"arch": torch.tensor([one_hot_row(layer)] * 19).view(19, 6, 4)}
    released = imagenet_space(decoding="released").derive(weights)
    assert released.layers[0] == layer and released.kernels[0] == [7, 3, 3, 5]
    forced = imagenet_space(decoding="forced").derive(weights)
    assert forced.layers[0] == (3, 3, 5, 7, SKIP, SKIP)
    assert imagenet_space(forced_sampling=False).decoding.name == "released"  # auto
    assert imagenet_space().decoding.name == "forced"


def test_decodings_differ_in_which_sub_blocks_may_skip():
    logits = torch.zeros(19, 6, 4)
    logits[:, :, 3] = 1.0  # skip scores highest everywhere
    logits[:, :, 1] = 0.5  # then k5
    released = imagenet_space(decoding="released").derive({"arch": logits})
    forced = imagenet_space(decoding="forced", min_expansion=2).derive({"arch": logits})
    assert released.layers[0] == (5, SKIP, SKIP, SKIP, SKIP, SKIP)
    assert forced.layers[0] == (5, 5, SKIP, SKIP, SKIP, SKIP)
    assert released.expansions == [1] * 19 and forced.expansions == [2] * 19


def test_an_unknown_decoding_is_a_config_error():
    with pytest.raises(ConfigError, match="space.decoding"):
        load_config(None, ["space.name=mobile-unified", "space.decoding=sorted"])


# -- refusals: one line, exit 2, nothing written -------------------------------------------------
def _refused(capsys, args, *words, run=None):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for w in words:
        assert w in err[0], err[0]
    if run is not None:
        assert not run.exists() or not any(run.iterdir())


def test_a_wrong_shape_or_key_in_the_checkpoint_is_refused(tmp_path, capsys):
    ckpt, prior = released_files(tmp_path)
    run = tmp_path / "run"
    state = random_state()
    state["hc_head.0.conv.weight"] = torch.randn(32, 9, 3, 3)
    save_released(ckpt, state)
    _refused(capsys, ["import", "sgnas", str(ckpt), str(prior), "--out", str(run)],
             "hc_head.0.conv.weight", "(32, 9, 3, 3)", "(32, 10, 3, 3)", run=run)
    state = random_state()
    state["body.block4.conv.weight"] = state.pop("body.block3.conv.weight")
    save_released(ckpt, state)
    _refused(capsys, ["import", "sgnas", str(ckpt), str(prior), "--out", str(run)],
             "body.block3.conv.weight", "body.block4.conv.weight", run=run)
    torch.save([1, 2], ckpt)
    _refused(capsys, ["import", "sgnas", str(ckpt), str(prior), "--out", str(run)], "`model`", run=run)
    ckpt.write_bytes(b"not a checkpoint")
    _refused(capsys, ["import", "sgnas", str(ckpt), str(prior), "--out", str(run)], "cannot read", run=run)


def _bad_pools():
    good = [one_hot_row((3, 5, 7, SKIP, SKIP, SKIP))] * 19
    two = [list(r) for r in good]
    two[4][4] = 1.0  # sub-block 1 of layer 4: k3 next to its k5
    half = [list(r) for r in good]
    half[0][0] = 0.5
    first_skip = [list(r) for r in good]
    first_skip[7][:4] = [0.0, 0.0, 0.0, 1.0]
    return {
        "two ones": ({"360": two}, ["layer 4, sub-block 1 has 2 ones"]),
        "rows": ({"360": good[:18]}, ["(18, 24)", "19 layers x 24 columns"]),
        "columns": ({"360": [r[:20] for r in good]}, ["(19, 20)"]),
        "key": ({"fast": good}, ["'fast'", "FLOPs"]),
        "values": ({"360": half}, ["0 and 1"]),
        "first skip": ({"360": first_skip}, ["layer 7 skips sub-block 0"]),
        "empty": ({}, ["not a prior pool"]),
        "ragged": ({"360": good[:5] + [[1.0]] + good[6:]}, ["not a table of numbers"]),
    }


@pytest.mark.parametrize("case", list(_bad_pools()))
def test_a_bad_prior_pool_is_refused(tmp_path, capsys, case):
    pool, words = _bad_pools()[case]
    ckpt, prior = released_files(tmp_path)
    prior.write_text(json.dumps(pool))
    run = tmp_path / "run"
    _refused(capsys, ["import", "sgnas", str(ckpt), str(prior), "--out", str(run)], str(prior), *words, run=run)


def test_prior_pool_that_is_not_json_and_a_taken_run_directory_are_refused(tmp_path, capsys):
    ckpt, prior = released_files(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{360: [")
    _refused(capsys, ["import", "sgnas", str(ckpt), str(bad), "--out", str(tmp_path / "r")], "JSONDecodeError")
    run = tmp_path / "run"
    assert main(["import", "sgnas", str(ckpt), str(prior), "--out", str(run)]) == 0
    _refused(capsys, ["import", "sgnas", str(ckpt), str(prior), "--out", str(run)], "already holds a run")


# -- shapes without data -------------------------------------------------------------------------
def test_static_dataset_info_opens_no_file(no_data):
    im = static_dataset_info(DataConfig(name="imagenet"))
    assert (im.in_channels, im.image_size, im.num_classes) == (3, 224, 1000)
    assert static_dataset_info(DataConfig(name="imagenet", image_size=160)).image_size == 160
    assert static_dataset_info(DataConfig(name="cifar100")).num_classes == 100
    assert static_dataset_info(DataConfig(name="fashion-mnist")).in_channels == 1
    assert static_dataset_info(DataConfig(name="imagefolder")) is None


def test_runs_without_a_recorded_input_fall_back_to_the_registry(no_data):
    from archsearch.config import SearchConfig
    from archsearch.engine.runinfo import run_info

    cfg = SearchConfig()
    cfg.data.name = "imagenet"
    assert run_info(cfg, {"format": 1}).num_classes == 1000  # a search checkpoint from before `info`
    recorded = {"name": "cifar100", "in_channels": 3, "image_size": 32, "num_classes": 100,
                "mean": [0.5] * 3, "std": [0.25] * 3}
    assert run_info(cfg, {"info": recorded}).image_size == 32
