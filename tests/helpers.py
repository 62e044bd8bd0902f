"""Tiny configurations shared by the tests."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import torch

from archsearch.config import SearchConfig, SpaceConfig, StrategyConfig, component
from archsearch.objectives.supervised import Supervised, classifier_head
from archsearch.spaces import create_space
from archsearch.strategies import StepContext, create_strategy


class Info:
    num_classes = 5
    in_channels = 3
    image_size = 8


def tiny_space(name="darts", **kw):
    cfg = component(SpaceConfig, name, init_channels=kw.pop("C", 4), layers=kw.pop("layers", 3), **kw)
    return create_space(cfg)


def tiny_setup(strategy="darts", space="darts", seed=0, dtype=torch.float64, **strategy_kw):
    torch.manual_seed(seed)
    sp = tiny_space(space, partial_channels=strategy_kw.pop("partial", 1))
    model = sp.build_supernet(3, 8, lambda c: classifier_head(c, Info.num_classes)).to(dtype)
    strat = create_strategy(component(StrategyConfig, strategy, **strategy_kw), sp).to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    g = torch.Generator().manual_seed(seed + 1)
    batches = [(torch.randn(4, 3, 8, 8, generator=g, dtype=dtype), torch.randint(0, 5, (4,), generator=g))
               for _ in range(6)]
    return sp, model, strat, opt, batches


def context(model, opt, batches, step=0, lr=0.1, grad_clip=5.0, seed=0):
    val = iter(batches[3:])
    obj = Supervised(SearchConfig().objective, Info)
    return StepContext(model=model, objective=obj, optimizer=opt, lr=lr, grad_clip=grad_clip,
                       step=step, epoch=0.0, seed=seed, next_val=lambda: next(val))


def one_line_error(capsys) -> str:
    """The single `archsearch: error:` line a failed CLI call printed."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("archsearch: error:")]
    assert len(errors) == 1, err
    return errors[0]


def cli(args, **kw) -> subprocess.Popen:
    """`python -m archsearch ARGS` in a child process (for SIGKILL tests)."""
    return subprocess.Popen([sys.executable, "-m", "archsearch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def wait_for_checkpoint(path: Path, key: str, at_least: int, timeout: float) -> None:
    """Poll a run's (atomically written) checkpoint until ckpt[key] >= at_least, or time out."""
    from archsearch.utils.io import load_checkpoint

    deadline = time.time() + timeout
    while time.time() < deadline and not (path.exists() and load_checkpoint(path)[key] >= at_least):
        time.sleep(0.02)
