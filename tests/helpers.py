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


# -- the one fast-vs-reference harness (tests/test_fast_path.py, tests/test_cuda.py) ----------------
def supernet_pair(ops, partial: int = 1, impl: str = "fast", dtype=torch.float64, device="cpu"):
    """One supernet (normal cell, then two reduction cells, 3 classes) whose every edge holds `ops`
    (or per-edge lists {"normal": [...], "reduce": [...]}), as `impl` and as its reference copy on the
    same weights; in float64 only a different function can make them disagree."""
    import copy

    from archsearch.spaces.darts.supernet import DartsSupernet

    torch.manual_seed(0)
    names = ops if isinstance(ops, dict) else {kind: [list(ops)] * 14 for kind in ("normal", "reduce")}
    net = DartsSupernet(names, 3, lambda c: classifier_head(c, 3), init_channels=2 * max(partial, 2), layers=3,
                        partial=partial, impl=impl).to(device, dtype)
    ref = copy.deepcopy(net)
    ref.impl = "reference"
    return net, ref


def forward_backward(net, x, y, weights):
    """([loss], weight gradients, architecture gradients) of one cross-entropy step."""
    import torch.nn.functional as F

    w = {k: v.detach().clone().requires_grad_(v.requires_grad) for k, v in weights.items()}
    loss = F.cross_entropy(net(x, w), y)
    net.zero_grad(set_to_none=True)
    loss.backward()
    grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()]
    return [loss.detach()], grads, [v.grad for v in w.values() if v.requires_grad]


def assert_same_step(net, ref, x, y, weights, stats=True, loss_tol=None, tol=None, stats_tol=None):
    """Loss, both kinds of gradient and (with `stats`) the BN running statistics agree (float64 bounds
    by default; callers in float32 pass theirs)."""
    loss_tol = loss_tol or {"rtol": 1e-12, "atol": 1e-12}
    tol = tol or {"rtol": 1e-9, "atol": 1e-11}
    stats_tol = stats_tol or {"rtol": 1e-9, "atol": 1e-12}
    out, expect = forward_backward(net, x, y, weights), forward_backward(ref, x, y, weights)
    torch.testing.assert_close(out[0][0], expect[0][0], **loss_tol)
    for group, ref_group in zip(out[1:], expect[1:]):
        assert len(group) == len(ref_group)
        for a, b in zip(group, ref_group):
            torch.testing.assert_close(a, b, **tol)
    for (name, a), b in zip(net.named_buffers(), ref.buffers() if stats else ()):
        torch.testing.assert_close(a.double(), b.double(), **stats_tol, msg=name)
