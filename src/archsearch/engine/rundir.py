"""Run-directory rules shared by search and training: one config per directory."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from archsearch.config import to_dict
from archsearch.errors import ConfigError


def check_same_config(run_dir: Path, cfg) -> None:
    """A run directory resumes only under the configuration it was started with."""
    try:
        saved = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))
    except Exception as e:  # missing or damaged: the checkpoint cannot be matched to a config
        raise ConfigError(f"{run_dir} has a checkpoint but no readable config.yaml ({type(e).__name__}); "
                          "use another --out directory") from None
    now = to_dict(cfg)
    if saved != now:
        diff = sorted(_diff_keys(saved, now))
        raise ConfigError(
            f"{run_dir} holds a run with a different config ({', '.join(diff[:5])}); "
            "use another --out directory to start a new run"
        )


def _diff_keys(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            yield from _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
    elif a != b:
        yield prefix.rstrip(".")
