"""Run directories: one run per directory; anything else is refused before a byte is written.

A run is identified by its kind (search, train, correlate), its resolved config and a content hash
of every input it reads besides the dataset (a training run's architecture, a study's table).
`run.json` records that identity, atomically and before anything else is written. A later command
on the same directory must present the same identity, and then:

* with `checkpoint.pt` (stamped with the identity, which is compared too) the run resumes; the
  engine cuts its JSONL logs back to the checkpoint;
* without one it starts afresh: what a run writes before its first checkpoint is deleted, so a
  rerun after a kill at any point repeats an uninterrupted run bit for bit;
* a finished run whose checkpoint.pt is gone is refused, and its results are kept.

A run recorded by an older archsearch, whose config lacks options added since, is the same run when
each missing option has its default here (`defaults`): new options default to the old behaviour, so
such a run resumes under its recorded identity.

Temporary files of killed atomic writes (in the directory and its direct subfolders) are removed
when a run (re)starts. Under torchrun every rank checks (reading only); rank 0 alone writes.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Optional

from torch import nn

from archsearch.engine.finite import check_finite
from archsearch.errors import RunDirError
from archsearch.heldwarnings import release_warnings
from archsearch.utils.io import (
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    content_hash,
    is_temp_file,
    load_checkpoint,
    read_json,
    remove_temp_files,
)

RUN_FILE = "run.json"
CHECKPOINT = "checkpoint.pt"
FORMAT = 1
# written before the first checkpoint: a run that starts afresh deletes them first
RESTART = ("metrics.jsonl", "arch_history.jsonl", "genotype.json", "best.pt", "tb")
# written only once a run has finished: without checkpoint.pt such a run is refused, not redone
FINISHED = ("summary.json", "model.pt")


class RunDir:
    """The guard of one run directory. `inputs` maps a description of each input to its content hash;
    `checkpoints=False` for a directory that resumes from its files (a correlation study)."""

    def __init__(self, path: Path, kind: str, config: dict, inputs: Optional[dict[str, str]] = None,
                 main: bool = True, checkpoints: bool = True, defaults: Optional[dict] = None):
        self.path = Path(path)
        self.kind = kind
        self.main = main
        self.checkpoints = checkpoints
        self.identity = {"format": FORMAT, "kind": kind, "config": json.loads(json.dumps(config)),
                         "inputs": dict(inputs or {})}
        self.digest = content_hash(self.identity)
        self.defaults = defaults
        self._restart = False

    # -- before anything is built ---------------------------------------------------------------
    def check(self) -> Optional[dict]:
        """Refuse a directory that holds anything but this run; the checkpoint to resume from, or
        None to start afresh. Writes nothing."""
        self._check_place()
        p = self.path
        if not p.exists():
            return None
        if not (p / RUN_FILE).exists():
            others = sorted(e.name for e in p.iterdir() if not is_temp_file(e))
            if others:
                raise RunDirError(f"{p} is not empty ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}) "
                                  f"and holds no {RUN_FILE}, so it is no archsearch run this version can continue; "
                                  "use a new or empty --out directory")
            return None
        self._compare(read_json(p / RUN_FILE, RunDirError))
        if not self.checkpoints:
            return None
        if (p / CHECKPOINT).exists():
            ckpt = load_checkpoint(p / CHECKPOINT)
            stamp = ckpt.get("run")
            if not isinstance(stamp, dict) or stamp.get("digest") != self.digest:
                raise RunDirError(self._foreign(stamp))
            return ckpt
        done = [f for f in FINISHED if (p / f).exists()]
        if done:
            raise RunDirError(f"{p} holds a finished run ({done[0]}) whose {CHECKPOINT} is gone: nothing to resume, "
                              "and its results are kept; use another --out directory to run it again")
        self._restart = any((p / f).exists() for f in RESTART)
        return None

    def _check_place(self) -> None:
        p = self.path
        if p.exists() and not p.is_dir():
            raise RunDirError(f"{p} is a file; the run directory must be a folder (choose another --out)")
        nearest = next(a for a in [p, *p.parents] if a.exists())
        if not nearest.is_dir():
            raise RunDirError(f"cannot create {p}: {nearest} is a file")
        if self.main and not os.access(nearest, os.W_OK | os.X_OK):
            raise RunDirError(f"cannot write in {nearest} (permission denied or a read-only file system); "
                              "choose another --out directory")

    def _compare(self, saved: Any) -> None:
        p = self.path
        if not (isinstance(saved, dict) and saved.get("format") == FORMAT
                and {"kind", "config", "inputs"} <= set(saved)):
            raise RunDirError(f"{p / RUN_FILE} is not a run record this archsearch wrote; use another --out directory")
        if saved["kind"] != self.kind:
            raise RunDirError(f"{p} holds a {saved['kind']} run, not a {self.kind} run; use another --out directory")
        if content_hash(saved["config"]) != content_hash(self.identity["config"]) and not self._older(saved):
            keys = sorted(_diff_keys(saved["config"], self.identity["config"]))
            raise RunDirError(f"{p} holds a run with a different config ({', '.join(keys[:5])}); use another "
                              "--out directory to start a new run")
        theirs, mine = saved["inputs"], self.identity["inputs"]
        changed = sorted(k for k in set(theirs) | set(mine) if theirs.get(k) != mine.get(k)) if isinstance(
            theirs, dict) else ["inputs"]
        if changed:
            raise RunDirError(f"{p} was started with another {', '.join(changed)}: its content changed since the run "
                              "began; restore it, or use another --out directory to start a new run")

    def _older(self, saved: dict) -> bool:
        """The recorded config is this one less options added since, each at its default: adopt the
        recorded identity, so the run's checkpoints (stamped with it) resume."""
        if self.defaults is None or not _lacks_only_defaults(saved["config"], self.identity["config"], self.defaults):
            return False
        self.identity = {**self.identity, "config": saved["config"]}
        self.digest = content_hash(self.identity)
        return True

    def _foreign(self, stamp: Any) -> str:
        where = self.path / CHECKPOINT
        if isinstance(stamp, dict) and isinstance(stamp.get("config"), dict):
            keys = sorted(_diff_keys(stamp["config"], self.identity["config"]))
            what = f"config differs in {', '.join(keys[:5])}" if keys else "its inputs differ"
            return f"{where} belongs to another run ({what}); move it away or use another --out directory"
        return (f"{where} carries no run identity (copied from another run, or written by an older archsearch); "
                "move it away or use another --out directory")

    # -- once the run is built ------------------------------------------------------------------
    def begin(self, config_yaml: str) -> None:
        """Record the identity before anything else (rank 0), remove stray temporary files and, for a
        run starting afresh, what its killed predecessor wrote; from here on warnings show at once."""
        release_warnings()
        if not self.main:
            return
        p = self.path
        p.mkdir(parents=True, exist_ok=True)
        for folder in [p, *(d for d in p.iterdir() if d.is_dir())]:  # the run's own files and e.g. archs/
            remove_temp_files(folder)
        if not (p / RUN_FILE).exists():
            atomic_write_json(p / RUN_FILE, {**self.identity, "digest": self.digest})
        elif self._restart:
            for name in RESTART:
                target = p / name
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
        config = p / "config.yaml"
        if not config.is_file() or config.read_text() != config_yaml:
            atomic_write_text(config, config_yaml)

    # -- during the run -------------------------------------------------------------------------
    def check_finite(self, where: str, modules: Iterable[Optional[nn.Module]],
                     parameters_only: Iterable[Optional[nn.Module]] = ()) -> None:
        """Every rank: stop with one line if a weight or statistic is no longer finite."""
        kept = (f"{self.path / CHECKPOINT} keeps the last good state" if (self.path / CHECKPOINT).exists()
                else "no checkpoint was written")
        check_finite(where, modules, parameters_only, kept)

    def save_checkpoint(self, where: str, state: dict, modules: Iterable[Optional[nn.Module]] = (),
                        parameters_only: Iterable[Optional[nn.Module]] = ()) -> None:
        """Check `modules` are finite (every rank), then write the checkpoint stamped with the run's
        identity (rank 0, atomically); a diverged state never replaces the last good one."""
        self.check_finite(where, modules, parameters_only)
        if self.main:
            atomic_torch_save(self.path / CHECKPOINT, {**state, "run": {"digest": self.digest, **self.identity}})


def _lacks_only_defaults(saved: Any, mine: Any, defaults: Any) -> bool:
    """`saved` equals `mine` but for keys it lacks, whose value in `mine` is the default."""
    if not (isinstance(saved, dict) and isinstance(mine, dict)):
        return json.dumps(saved) == json.dumps(mine)
    if set(saved) - set(mine):  # an option this version no longer has
        return False
    defaults = defaults if isinstance(defaults, dict) else {}
    for k, v in mine.items():
        if k in saved:
            if not _lacks_only_defaults(saved[k], v, defaults.get(k)):
                return False
        elif k not in defaults or json.dumps(v) != json.dumps(defaults[k]):
            return False
    return True


def _diff_keys(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            yield from _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
    elif json.dumps(a) != json.dumps(b):
        yield prefix.rstrip(".")
