"""Rank-correlation studies: sampling under a cost window, scores, statistics, resume."""
import csv
import json
import random

import pytest

from archsearch.cli import main
from archsearch.spaces.darts.cost import network_cost
from archsearch.spaces.darts.genotype import published_genotypes
from archsearch.studies.config import CorrelateConfig
from archsearch.studies.correlate import TABLE, correlations, in_window, sample_archs


def test_correlations_on_known_data():
    # ranks 1 2 3 4 vs 1 3 2 4: d^2 = 2 -> rho = 1 - 6*2/(4*15) = 0.8; one discordant pair of 6 -> tau = 2/3
    scores = {str(i): {"a": x, "b": y} for i, (x, y) in enumerate([(1, 1), (2, 3), (3, 2), (4, 4)])}
    (pair,) = correlations(scores)
    assert (pair["x"], pair["y"], pair["n"]) == ("a", "b", 4)
    assert pair["spearman_rho"] == pytest.approx(0.8)
    assert pair["kendall_tau"] == pytest.approx(2 / 3)
    scores["4"] = {"a": 5.0}  # missing from b: left out of the pair
    assert correlations(scores)[0]["n"] == 4


def test_unnas_sampling_and_the_resnet56_window():
    cfg = CorrelateConfig(num_archs=30, seed=1)
    archs = sample_archs(cfg)
    assert len(set(archs)) == 30
    w = cfg.window
    for g in archs:
        cost = network_cost(g, 16, 20)
        assert 0.8 <= cost.params / w.reference_params <= 1.2
        assert 0.8 <= cost.macs / w.reference_mult_adds <= 1.2
    assert sample_archs(cfg) == archs  # seeded
    # the UnNAS distribution: `none` ops and repeated inputs occur
    rng = random.Random(0)
    from archsearch.spaces import create_space
    space = create_space(cfg.space)
    cells = [space.sample(rng, unnas=True).normal for _ in range(200)]
    assert any(op == "none" for c in cells for op, _ in c)
    assert any(c[2 * i][1] == c[2 * i + 1][1] for c in cells for i in range(4))
    assert in_window(published_genotypes()["DARTS_V2"], cfg)  # 0.83x the params, 0.91x the mult-adds
    pools = space.sample(random.Random(0))
    pools = type(pools)(tuple(("max_pool_3x3", s) for _, s in pools.normal), pools.normal_concat,
                        tuple(("max_pool_3x3", s) for _, s in pools.reduce), pools.reduce_concat)
    assert not in_window(pools, cfg)  # no parametric op: far below the window


GEN = ["train.data.name=generated", "train.data.generated.image_size=16", "train.data.generated.channels=1",
       "train.data.generated.num_classes=4", "train.data.generated.num_samples=64", "train.data.batch_size=8",
       "train.data.val_batch_size=32", "train.data.subset=0", "train.model.init_channels=4",
       "train.model.layers=3", "train.optim.epochs=2", "train.steps_per_epoch=2", "train.eval_batches=1"]


@pytest.mark.slow  # 20 trainings, each in its own worker process
def test_study_from_a_table_resumes_and_reports(tmp_path, capsys):
    table = tmp_path / "table.csv"
    rng = random.Random(0)
    from archsearch.spaces import create_space
    space = create_space(CorrelateConfig().space)
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["genotype", "accuracy"])
        for i in range(20):
            w.writerow([json.dumps(space.sample(rng).to_dict()), 0.5 + i / 100])
    out = tmp_path / "study"
    args = ["correlate", "correlate_fashionmnist", *GEN, f"table.path={table}", "table.per_decile=1",
            "objectives=[supervised]", "seeds=[0,1]", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    result = json.loads((out / "correlations.json").read_text())
    (pair,) = result["pairs"]
    assert (pair["x"], pair["y"], pair["n"]) == (TABLE, "supervised", 10)
    assert -1 <= pair["spearman_rho"] <= 1
    rows = list(csv.DictReader((out / "scores.csv").open()))
    assert len(rows) == 10 and len({r[TABLE] for r in rows}) == 10  # one row per decile
    assert len(list((out / "runs").iterdir())) == 20 and (out / "scatter.png").is_file()
    assert "Spearman rho" in capsys.readouterr().out
    # a rerun trains nothing again and reproduces the numbers
    stamps = {p: (p / "summary.json").stat().st_mtime_ns for p in (out / "runs").iterdir()}
    assert main(args) == 0
    assert stamps == {p: (p / "summary.json").stat().st_mtime_ns for p in (out / "runs").iterdir()}
    assert json.loads((out / "correlations.json").read_text()) == result


def test_bad_table_is_one_line_error(tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("arch,acc\n1,2\n")
    assert main(["correlate", "correlate_fashionmnist", f"table.path={table}", "--out", str(tmp_path / "o")]) == 2
    assert "genotype" in capsys.readouterr().err
