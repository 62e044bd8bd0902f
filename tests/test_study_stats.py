"""studies/stats.py on hand-made numbers, the per-sample correctness file of a training, and the
statistics a study writes."""
import json
import math

import numpy as np
import pytest
import torch
import yaml
from scipy import stats as sps

from archsearch.cli import main
from archsearch.config import ObjectiveConfig, component
from archsearch.data import DatasetInfo
from archsearch.objectives import create_objective
from archsearch.studies import stats
from archsearch.studies.study import compare
from archsearch.utils.correct import read_correct, write_correct


def test_minimum_detectable_effect_is_the_normal_power_formula():
    # (1.6449 + 0.8416) * 0.01 * sqrt(1/2 + 1/8) = 0.019659
    assert stats.min_detectable_effect(0.01, 2, 8) == pytest.approx(2.486475 * 0.01 * math.sqrt(0.625), rel=1e-5)
    # at exactly the MDE, a one-sided z-test at 5% rejects with probability 80%
    s, n_m, n_r = 0.02, 4, 10
    se = s * math.sqrt(1 / n_m + 1 / n_r)
    mde = stats.min_detectable_effect(s, n_m, n_r)
    assert sps.norm.sf(sps.norm.ppf(0.95) - mde / se) == pytest.approx(0.80)


def test_noise_floor_pieces():
    assert stats.binomial_se(0.75, 2560) == pytest.approx(math.sqrt(0.75 * 0.25 / 2560))  # 0.86 points
    assert stats.chance_level("top1", 10) == 0.1 and stats.chance_level("test_top5", 4) == 1.0
    assert stats.chance_level("miou", 19) is None and stats.chance_level("top1", None) is None
    # two architectures, two seeds each: variances 0.5 and 2 (1 dof each) pool to 1.25
    assert stats.pooled_seed_std([[1.0, 2.0], [3.0, 5.0], [7.0]]) == pytest.approx(math.sqrt(1.25))
    assert stats.pooled_seed_std([[1.0], [2.0]]) is None


def test_bootstrap_interval_covers_the_true_mean_and_matches_the_point_statistics():
    rng = np.random.default_rng(1)
    random_scores = list(0.80 + 0.01 * rng.standard_normal(20))
    method = list(0.83 + 0.01 * rng.standard_normal(6))  # true mean 0.83
    ci = stats.bootstrap(method, random_scores)
    assert ci["mean"][0] < 0.83 < ci["mean"][1] and ci["mean"][1] - ci["mean"][0] < 0.03
    point = compare(method, random_scores)
    assert ci["ri_percent"][0] < point["ri_percent"] < ci["ri_percent"][1]
    assert ci["percentile_among_random"][1] == 100.0  # every random cell is below the method
    assert stats.bootstrap(method, random_scores) == ci  # seeded
    one = stats.bootstrap([0.9], random_scores)["mean"]
    assert one == [0.9, 0.9]  # one architecture: nothing to resample
    lo, hi = stats.bootstrap_mean(random_scores)
    assert lo < np.mean(random_scores) < hi


def test_paired_difference_has_the_sign_of_the_better_side():
    rng = np.random.default_rng(0)
    truth = rng.random(2000) < 0.7
    better = np.stack([truth | (rng.random(2000) < 0.3) for _ in range(2)])  # right more often
    worse = np.stack([truth & (rng.random(2000) < 0.9) for _ in range(5)])
    up = stats.paired_difference(better, worse)
    assert up["difference"] == pytest.approx(better.mean() - worse.mean())
    assert up["difference"] > 0 and up["interval"][0] > 0 and up["p"] < 1e-6
    down = stats.paired_difference(worse, better)
    assert down["difference"] == pytest.approx(-up["difference"]) and down["interval"][1] < 0 and down["p"] > 0.99


def test_verdicts_and_warnings():
    assert stats.verdict(0.02, 0.01, 90, 0.01).startswith("above random (Mann-Whitney p=0.01")
    line = stats.verdict(-0.005, 0.8, 30, 0.012)
    assert line == ("cannot separate at this size: observed difference -0.50 points is below the minimum "
                    "detectable effect 1.20 points")
    assert stats.verdict(-0.03, 0.99, 0, 0.012).startswith("not above random (difference -3.00 points")
    assert stats.verdict(0.03, 0.2, 85, 0.012).startswith("not above random")  # large but not significant
    assert stats.verdict(0.03, None, 100, 0.012).startswith("cannot separate at this size: a test needs")
    warned = stats.study_warnings(1, 3, {"darts": 0.122, "random": 0.10}, chance=0.1, samples=2560,
                                  unfinished={"failed": 1, "not run": 2})
    assert len(warned) == 4
    assert "1 search seed" in warned[0] and "3 random cells" in warned[1]
    assert "random (10.00%)" in warned[2] and "darts" not in warned[2]  # 2 SE at 10% of 2560 = 1.19 points
    assert "3 runs did not finish (1 failed, 2 not run)" in warned[3]
    assert stats.study_warnings(2, 10, {"darts": 0.9}, 0.1, 2560, {}) == []


@pytest.mark.parametrize("name, classes", [("supervised", 10), ("rotation", 4), ("jigsaw", 24)])
def test_per_sample_correctness_averages_to_the_main_metric(name, classes):
    info = DatasetInfo("gray", 1, 16, 10, (0.5,), (0.25,))
    extra = {"grid": 2} if name == "jigsaw" else {}
    obj = create_objective(component(ObjectiveConfig, name, **extra), info)
    logits, targets = torch.randn(64, classes), torch.randint(classes, (64,))
    logits[:20, :] = 0.0  # ties: the same top-1 as the metric's
    correct = obj.sample_correct(logits, targets)
    assert obj.num_classes == classes and correct.dtype == torch.bool and correct.shape == (64,)
    assert correct.float().mean().item() == pytest.approx(obj.metrics(logits, targets)["top1"])


def test_correctness_file_round_trip(tmp_path):
    bits = np.random.default_rng(0).random(21) < 0.5
    write_correct(tmp_path / "c.npz", bits, "top1")
    back, metric = read_correct(tmp_path / "c.npz")
    assert metric == "top1" and np.array_equal(back, bits)


TRAIN = ["data.name=generated", "data.generated.image_size=16", "data.generated.channels=1",
         "data.generated.num_classes=4", "data.generated.num_samples=64", "data.batch_size=8",
         "data.val_batch_size=16", "model.init_channels=4", "model.layers=3", "data.subset=0", "optim.epochs=1",
         "steps_per_epoch=2"]


def test_training_writes_per_sample_correctness_and_a_resume_writes_it_again(tmp_path):
    out = tmp_path / "run"
    argv = ["train", *TRAIN, "--genotype", "DARTS_V2", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    correct, metric = read_correct(out / "test_correct.npz")
    assert summary["test_correct"] == {"file": "test_correct.npz", "metric": "top1", "samples": 64}
    assert summary["num_classes"] == 4 and metric == "top1" and len(correct) == 64
    assert correct.mean() == pytest.approx(summary["final"]["test_top1"])
    # killed after its last checkpoint, before the end: the resumed run evaluates again and writes both
    for name in ("test_correct.npz", "summary.json", "model.pt"):
        (out / name).unlink()
    assert main(argv) == 0
    assert np.array_equal(read_correct(out / "test_correct.npz")[0], correct)
    assert json.loads((out / "summary.json").read_text())["final"] == summary["final"]


def test_a_study_reports_noise_intervals_power_paired_test_and_warnings(tmp_path, capsys):
    search = [*TRAIN[:6], "space.init_channels=4", "space.layers=3", "steps_per_epoch=1", "optim.epochs=1",
              "val_batches=1"]
    cfg = {"name": "tiny", "search_seeds": [0],
           "searches": [{"preset": "darts_fashionmnist", "label": "darts", "overrides": search}],
           "retrain": {"preset": "train_fashionmnist", "overrides": [*TRAIN, "eval_batches=2"], "seeds": [0]},
           "baselines": {"random": 2, "seed": 0},
           "executor": {"name": "local", "workers": 2, "threads": 1}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    assert main(["study", str(tmp_path / "study.yaml"), "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "warning: 1 search seed" in err and "warning: only 2 random cells" in err
    summary = json.loads((out / "summary.json").read_text())
    noise = summary["noise"]
    assert noise["test_samples"] == 32 and noise["num_classes"] == 4 and noise["chance"] == 0.25
    assert noise["binomial_se"] > 0 and noise["seed_std"] is None and noise["random_std"] is not None  # one seed
    darts = summary["methods"]["darts"]
    vs = darts["vs_random"]
    assert vs["mde"] > 0 and len(vs["interval"]["mean"]) == 2 and vs["paired"]["samples"] == 32
    assert vs["paired"]["difference"] == pytest.approx(vs["difference"])  # balanced: the same images, the same mean
    assert darts["verdict"] and len(summary["warnings"]) >= 2
    rows = (out / "results.csv").read_text().splitlines()
    assert "test_samples,num_classes,correct_file" in rows[0] and "test_correct.npz" in rows[2]
    report = (out / "report.md").read_text()
    assert report.index("## Warnings") < report.index("| method |") and "## Statistics" in report
