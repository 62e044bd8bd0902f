"""benchmarks/gpu_check.py's CPU mode at tiny sizes, so the GPU check cannot rot between GPU loans."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_cpu_tiny(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu", "--tiny", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    steps = {r["step"]: r for r in report["steps"]}
    assert {"CUDA tests (pytest -m cuda)", "bench float32 reference", "bench float32 fast", "bench float32 batched",
            "DARTS-1st epoch", "PC-DARTS epoch", "VIM-NAS epoch", "train_cifar10 epoch (DARTS_V2)"} <= set(steps)
    assert all(r["status"] == "ok" for r in report["steps"])
    assert steps["DARTS-1st epoch"]["summary"]["steps"] == 2 and steps["DARTS-1st epoch"]["peak_mb"] > 0
    assert steps["train_cifar10 epoch (DARTS_V2)"]["images_per_s"] > 0
    table = (tmp_path / "gpu-check.md").read_text()
    assert table in p.stdout and "| bench float32 batched | ok |" in table
    assert "| bench channels-last fast | ok |" in table and "warm-up" in steps["bench float32 fast"]["result"]
    assert "compile and cuda graphs variants skipped in --cpu mode" in table  # inductor takes minutes on CPU
