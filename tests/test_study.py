"""`archsearch study`: checks before anything runs, statistics, executors, failures, resume after kills."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from archsearch.cli import main
from archsearch.studies.study import compare

GEN = ["data.name=generated", "data.generated.image_size=16", "data.generated.channels=1",
       "data.generated.num_classes=4", "data.generated.num_samples=64", "data.batch_size=8", "data.subset=0"]
SEARCH = [*GEN, "space.init_channels=4", "space.layers=3", "steps_per_epoch=2", "optim.epochs=1", "val_batches=1",
          "log_every=1", "history_every=1"]
TRAIN = [*GEN, "data.val_batch_size=32", "model.init_channels=4", "model.layers=3", "optim.epochs=2",
         "steps_per_epoch=2", "eval_batches=1"]


def tiny(tmp_path: Path, **changes) -> Path:
    """A study of two methods x one seed, 3 random cells and one published genotype, in seconds a run."""
    cfg = {"name": "tiny",
           "searches": [{"preset": "darts_fashionmnist", "label": "darts", "overrides": SEARCH},
                        {"preset": "pcdarts_fashionmnist", "label": "pcdarts",
                         "overrides": [*SEARCH, "strategy.arch_freeze_epochs=0"]}],
           "search_seeds": [0],
           "retrain": {"preset": "train_fashionmnist", "overrides": TRAIN, "seeds": [0]},
           "baselines": {"random": 3, "seed": 0, "published": ["DARTS_V2"]},
           "executor": {"name": "local", "workers": 2, "threads": 1}}
    cfg.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def metrics(out: Path) -> list[tuple]:
    """results.csv without the timings: what must not depend on the executor or on interruptions."""
    keep = ("role", "method", "arch", "search_seed", "train_seed", "status", "final", "best", "score", "params_M",
            "mult_adds_M", "run")
    return [tuple(r[k] for k in keep) for r in csv.DictReader((out / "results.csv").open())]


def test_relative_improvement_percentile_and_rank_test():
    random_scores = [0.80, 0.82, 0.84, 0.86, 0.88]
    c = compare([0.87, 0.89], random_scores)
    assert c["ri_percent"] == pytest.approx(100 * (0.88 - 0.84) / 0.84)
    assert c["percentile_among_random"] == pytest.approx(90.0)  # 0.88 ties one of 5, beats 4: (80 + 100) / 2
    # U = pairs (method > random) = 4 + 5 = 9 of 10; one-sided exact p = P(U >= 9) = 2 / C(7, 2) = 2/21
    assert c["rank_test"]["u"] == 9.0 and c["rank_test"]["p"] == pytest.approx(2 / 21)
    assert compare([0.9], random_scores)["rank_test"] is None  # one architecture: no rank test


@pytest.mark.parametrize("change, message", [
    ({"searches": [{"preset": "darts_fashionmnistt", "label": "x"}]},
     "search x: config 'darts_fashionmnistt' not found"),
    ({"retrain": {"preset": "train_sgnas_fashionmnist"}}, "model 'mobile' cannot take the architectures of search"),
    ({"searches": [{"preset": "darts_fashionmnist", "overrides": ["seed=3"]}]}, "do not override seed"),
    ({"searches": [{"preset": "darts_fashionmnist"}, {"preset": "darts_fashionmnist"}]}, "two searches are labelled"),
    ({"searches": [{"preset": "darts_fashionmnist", "label": "random"}]}, "names the random baseline"),
    ({"baselines": {"published": ["DARTS_V9"]}}, "baselines.published"),
    ({"executor": {"name": "local", "address": "auto"}}, "executor.address is not an option of executor 'local'"),
    ({"executor": {"name": "slurm"}}, "unknown executor 'slurm'"),
])
def test_a_bad_study_is_one_line_before_anything_runs(tmp_path, capsys, change, message):
    out = tmp_path / "out"
    assert main(["study", str(tiny(tmp_path, **change)), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.slow
def test_local_study_reports_and_a_rerun_runs_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["study", str(tiny(tmp_path)), "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished ") == 10 and "random: test_top1" in printed  # 2 searches, 2 scorings, 6 trainings
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["role"] for r in rows] == ["search"] * 2 + ["retrain"] * 2 + ["random"] * 3 + ["published"]
    assert all(r["status"] == "done" and r["wall_h"] and r["cpu_h"] for r in rows)
    assert all(r["final"] and r["params_M"] for r in rows if r["role"] != "search")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"]["random"]["architectures"] == 3
    assert "vs_random" in summary["methods"]["darts"] and summary["methods"]["darts"]["search_cost"]["cpu_h"] > 0
    report = (out / "report.md").read_text()
    assert "| darts |" in report and "(strip.png)" in report and (out / "strip.png").is_file()
    assert (out / "params.svg").is_file()
    # the drawn cells are distinct and the retrainings read the searches' genotypes
    drawn = [json.loads(p.read_text()) for p in sorted((out / "archs").glob("random-*.json"))]
    assert len(drawn) == 3 and len({json.dumps(d, sort_keys=True) for d in drawn}) == 3
    trained = json.loads((out / "runs/train/darts-s0-t0/genotype.json").read_text())
    assert trained == json.loads((out / "runs/search/darts-s0/genotype.json").read_text())
    # rerunning (with another executor setting) trains nothing again
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/summary.json")}
    assert main([*argv, "executor.workers=1"]) == 0
    assert "10 of 10 runs already finished" in capsys.readouterr().out
    # a report of what has finished runs nothing and needs a study
    (out / "report.md").unlink()
    assert main([*argv, "--report-only"]) == 0 and (out / "report.md").is_file()
    assert main(["study", str(tiny(tmp_path)), "--out", str(tmp_path / "none"), "--report-only"]) == 2
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/summary.json")}


@pytest.mark.slow
def test_a_failed_run_is_recorded_and_the_others_go_on(tmp_path, capsys):
    out = tmp_path / "out"
    searches = [{"preset": "darts_fashionmnist", "label": "darts", "overrides": SEARCH},
                {"preset": "darts_fashionmnist", "label": "broken",  # fails when it reads its data, not before
                 "overrides": [*SEARCH, "data.name=cifar10", f"data.root={tmp_path / 'nowhere'}"]}]
    argv = ["study", str(tiny(tmp_path, searches=searches, baselines={"random": 2})), "--out", str(out),
            "--no-progress"]
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert "FAILED   search/broken-s0" in printed and "skipped  train/broken-s0-t0" in printed
    rows = {r["run"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert rows["runs/search/broken-s0"]["status"] == "failed" and "nowhere" in rows["runs/search/broken-s0"]["error"]
    assert rows["runs/train/broken-s0-t0"]["status"] == "skipped"
    assert sum(r["status"] == "done" for r in rows.values()) == 4  # darts search + its retraining + 2 random
    assert (out / "logs" / "search__broken-s0.txt").read_text().startswith("Traceback")
    assert "Runs that did not finish" in (out / "report.md").read_text()


def _study_process(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # a shell's background job (CI) ignores SIGINT, and a child inherits that: give the study the
    # default disposition, as in a terminal, so that Python turns SIGINT into KeyboardInterrupt
    return subprocess.Popen([sys.executable, "-m", "archsearch", "study", str(config), "--out", str(out),
                             "--no-progress", *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_records(out: Path, n: int, proc: subprocess.Popen, limit: float = 300) -> None:
    t0 = time.time()
    while len(list((out / "jobs").glob("*.json"))) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < limit
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        return "\tZ" not in Path(f"/proc/{pid}/status").read_text().split("State:")[1][:4]
    except (FileNotFoundError, IndexError):
        return False


def test_ranking_correlates_supernet_scores_with_retrained_ones(tmp_path):
    from types import SimpleNamespace

    from archsearch.studies.executors import Job
    from archsearch.studies.ranking import ranking, ranking_lines

    jobs = []
    for seed, oneshot in ((0, [0.1, 0.2, 0.3, 0.4, 0.5]), (1, [0.5, 0.4, 0.3, 0.2, 0.1])):
        d = tmp_path / f"m-s{seed}"
        d.mkdir()
        keys = ["random-000", "random-001", "random-002", "random-003", f"m-s{seed}"]
        (d / "scores.json").write_text(json.dumps(dict(zip(keys, oneshot))))
        jobs.append(Job(f"score/m-s{seed}", "score", {}, str(d)))
    retrained = {"random": {"random-000": 0.6, "random-001": 0.7, "random-002": 0.8, "random-003": 0.9},
                 "m": {"m-s0": 0.95, "m-s1": 0.95}}
    rank = ranking(SimpleNamespace(jobs=jobs), retrained)
    assert rank["searches"]["m-s0"]["tau"] == pytest.approx(1.0) and rank["searches"]["m-s0"]["tau_p"] < 0.05
    assert rank["searches"]["m-s1"]["tau"] == pytest.approx(-1.0) and rank["searches"]["m-s1"]["n"] == 5
    assert rank["methods"]["m"]["mean_tau"] == pytest.approx(0.0)
    assert any("1 of 2 supernets rank" in line for line in ranking_lines(rank))


@pytest.mark.slow
def test_selection_rules_are_methods_and_the_supernets_rank_the_architectures(tmp_path):
    """Each listed rule is a method of its own (`LABEL+RULE`), derived from the same search; every
    random and found architecture is scored on the supernet and correlated with its retrained score."""
    out = tmp_path / "out"
    searches = [{"preset": "darts_fashionmnist", "label": "darts", "overrides": SEARCH,
                 "selections": ["argmax", "sampled"]}]
    cfg = tiny(tmp_path, searches=searches, baselines={"random": 3, "seed": 0},
               selection={"samples": 2, "batches": 1}, ranking={"batches": 1, "bn_batches": 1})
    assert main(["study", str(cfg), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"darts+argmax", "darts+sampled", "random"} <= set(summary["methods"])
    assert json.loads((out / "runs/train/darts+argmax-s0-t0/genotype.json").read_text()) == json.loads(
        (out / "runs/search/darts-s0/genotype.json").read_text())
    assert json.loads((out / "runs/train/darts+sampled-s0-t0/genotype.json").read_text()) == json.loads(
        (out / "runs/derive/darts+sampled-s0/genotype.json").read_text())
    rank = summary["ranking"]["searches"]["darts-s0"]
    assert rank["n"] == 5 and rank["tau"] is not None and -1 <= rank["tau"] <= 1
    assert set(rank["pairs"]) == {"random-000", "random-001", "random-002", "darts+argmax-s0", "darts+sampled-s0"}
    assert "Can the supernets rank" in (out / "report.md").read_text() and (out / "ranking.png").is_file()


@pytest.mark.slow
def test_sigkill_midway_then_rerun_equals_an_uninterrupted_study(tmp_path):
    config = tiny(tmp_path)
    whole = tmp_path / "whole"
    proc = _study_process(config, whole)
    assert proc.wait(timeout=600) == 0, proc.communicate()
    killed = tmp_path / "killed"
    proc = _study_process(config, killed)
    _wait_for_records(killed, 3, proc)
    workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                              text=True).stdout.split()]
    proc.kill()  # the study process only: its workers die with it (PR_SET_PDEATHSIG)
    proc.wait()
    t0 = time.time()
    while any(_alive(p) for p in workers):
        assert time.time() - t0 < 10, "workers outlived the killed study"
        time.sleep(0.1)
    done = {p: p.stat().st_mtime_ns for p in killed.glob("runs/*/*/summary.json")}
    assert len(done) >= 3
    proc = _study_process(config, killed)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert f"{len(done)} of 10 runs already finished" in stdout
    assert done == {p: p.stat().st_mtime_ns for p in done}  # finished runs were not trained again
    assert [r[:-1] for r in metrics(killed)] == [r[:-1] for r in metrics(whole)]
    assert [r[-1] for r in metrics(killed)] == [r[-1] for r in metrics(whole)]  # same run directories


@pytest.mark.slow
def test_sigint_stops_the_study_cleanly_and_it_resumes(tmp_path):
    config = tiny(tmp_path, baselines={"random": 2})
    out = tmp_path / "out"
    proc = _study_process(config, out)
    _wait_for_records(out, 1, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    proc = _study_process(config, out)
    assert proc.wait(timeout=600) == 0, proc.communicate()
    assert all(r[5] == "done" for r in metrics(out))


@pytest.mark.slow
def test_ray_executor_gives_the_local_results(tmp_path):
    pytest.importorskip("ray")
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    assert main(["study", str(tiny(tmp_path, baselines={"random": 2})), "--out", str(local), "--no-progress"]) == 0
    ray_config = tiny(tmp_path, baselines={"random": 2},
                      executor={"name": "ray", "num_cpus": 2, "cpus_per_run": 1})  # one thread a run, as local
    assert main(["study", str(ray_config), "--out", str(ray_out), "--no-progress"]) == 0
    assert [r[:-1] for r in metrics(ray_out)] == [r[:-1] for r in metrics(local)]
