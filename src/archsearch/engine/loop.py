"""The run-directory machinery every run loop shares (search and training).

A `RunLoop` guards its directory (engine/rundir.py) from the moment it is made, so another run's
directory is refused before anything is built. Once the engine has built its run and restored the
checkpoint, `begin()` records the identity, cuts the JSONL logs back to the checkpoint, and opens
TensorBoard (purging events past the resume point) and the progress bar; leaving the `with` block
closes both. Under torchrun every rank runs the same calls: the logs, TensorBoard and the files are
written by rank 0 only, the finite checks run on every rank.

The engines keep what is theirs: what a step or an epoch does, what is logged, what the summary says.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from archsearch.config import ComponentConfig, defaults_like, to_dict, to_yaml
from archsearch.engine.distributed import DistInfo
from archsearch.engine.rundir import RunDir
from archsearch.engine.runlog import JsonlLog
from archsearch.errors import ConfigError
from archsearch.utils.io import atomic_torch_save, atomic_write_json, file_hash


class RunLoop:
    """One run in one directory: `logs` names its JSONL logs (metrics.jsonl, ...); `inputs` adds
    content hashes of inputs the config alone does not pin (to those of the components' files)."""

    def __init__(self, path: Path, kind: str, cfg: Any, dist: DistInfo, inputs: Optional[dict[str, str]] = None,
                 logs: Iterable[str] = ("metrics",)):
        self.path = Path(path)
        self.cfg = cfg
        self.main = dist.is_main
        self.run = RunDir(self.path, kind, to_dict(cfg), {**(inputs or {}), **component_inputs(cfg)}, main=self.main,
                          defaults=defaults_like(cfg))
        self.checkpoint = self.run.check()  # refuses another run's directory before anything is built
        self.logs = {name: JsonlLog(self.path / f"{name}.jsonl") for name in logs}
        self.writer: Optional[SummaryWriter] = None
        self.bar: Optional[tqdm] = None
        self._t0 = time.time()

    @property
    def resuming(self) -> bool:
        return self.checkpoint is not None

    # -- once the run is built and restored ---------------------------------------------------
    def begin(self, *, keep_through: int, tb_step: int, total: int, done: int, desc: str,
              progress: Optional[bool] = None) -> RunLoop:
        """Record the run and open its outputs: log lines up to step `keep_through` are kept (all
        when starting afresh), TensorBoard events from `tb_step` on are dropped, and the bar shows
        `done` of `total` steps (None for `progress`: only on a terminal)."""
        self.run.begin(to_yaml(self.cfg))
        if self.main:
            if self.resuming:
                for jsonl in self.logs.values():
                    jsonl.truncate_after(keep_through)
            self.writer = SummaryWriter(str(self.path / "tb"), purge_step=tb_step)
        self._t0 = time.time()
        self.bar = tqdm(total=total, initial=done, desc=desc, unit="step", dynamic_ncols=True,
                        disable=(not self.main) or (None if progress is None else not progress))
        return self

    def __enter__(self) -> RunLoop:
        return self

    def __exit__(self, *exc) -> None:
        self.close_bar()
        if self.writer is not None:
            self.writer.close()

    def close_bar(self) -> None:
        """End the progress display (the loop is over; what follows is the engine's wrap-up)."""
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.flush()

    @property
    def seconds(self) -> float:
        """Wall time since `begin()`: this process's share of the run."""
        return time.time() - self._t0

    # -- records (rank 0 writes; the other ranks pass) ----------------------------------------
    def append(self, log_name: str, record: dict) -> None:
        if self.main:
            self.logs[log_name].append(record)

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        """One TensorBoard scalar per value, tagged `prefix` + key."""
        if self.main:
            for k, v in values.items():
                self.writer.add_scalar(f"{prefix}{k}", v, step)

    def histogram(self, tag: str, values, step: int) -> None:
        if self.main:
            self.writer.add_histogram(tag, values, step)

    def write_json(self, name: str, obj: Any) -> None:
        if self.main:
            atomic_write_json(self.path / name, obj)

    def write_torch(self, name: str, obj: Any) -> None:
        if self.main:
            atomic_torch_save(self.path / name, obj)

    # -- checkpoints ----------------------------------------------------------------------------
    def check_finite(self, where: str, modules: Iterable[Optional[nn.Module]]) -> None:
        """Every rank: stop with one line if a weight or statistic is no longer finite."""
        self.run.check_finite(where, modules)

    def save_checkpoint(self, where: str, state: dict, modules: Iterable[Optional[nn.Module]] = (),
                        parameters_only: Iterable[Optional[nn.Module]] = ()) -> None:
        """Every rank checks `modules` are finite, rank 0 writes the stamped checkpoint atomically."""
        self.run.save_checkpoint(where, state, modules, parameters_only)


def component_inputs(cfg: Any) -> dict[str, str]:
    """Content hashes of the files the config's components read (`ComponentConfig.input_files`),
    keyed like the other inputs of a run identity: 'file (objective.bins)'."""
    out = {}
    for f in dataclasses.fields(cfg):
        section = getattr(cfg, f.name)
        if not isinstance(section, ComponentConfig):
            continue
        for option, path in section.input_files().items():
            key = f"{f.name}.{option}"
            try:
                out[f"file ({key})"] = file_hash(Path(path).expanduser())
            except OSError as e:
                raise ConfigError(f"cannot read {key} file {path}: {e.strerror or type(e).__name__}") from None
    return out
