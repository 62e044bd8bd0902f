"""Reference vs fast DARTS supernet, interleaved step by step, timed in thread CPU time.

On a shared machine wall time measures the other jobs; CPU time of this thread (1 torch thread)
measures the work. Passes: `w` = forward + backward into the network weights (arch weights
fixed), `a` = forward + gradient of the architecture weights only (DARTS-1st arch step).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/interleaved.py --batch 16 --rounds 2
"""
import argparse
import time

import torch
import torch.nn.functional as F

from archsearch.config import SpaceConfig
from archsearch.objectives.supervised import classifier_head
from archsearch.spaces import create_space


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--size", type=int, default=32)
    args = p.parse_args()
    torch.manual_seed(0)
    space = create_space(SpaceConfig())
    net = space.build_supernet(3, 16, lambda c: classifier_head(c, 10)).train()
    x, y = torch.randn(args.batch, 3, args.size, args.size), torch.randint(0, 10, (args.batch,))
    alphas = {k: (1e-3 * torch.randn(*s)).requires_grad_() for k, s in space.arch_shapes().items()}

    def run(mode):
        w = {k: torch.softmax(a, -1) for k, a in alphas.items()}
        if mode == "w":
            w = {k: v.detach() for k, v in w.items()}
            F.cross_entropy(net(x, w), y).backward()
            net.zero_grad(set_to_none=True)
        else:
            torch.autograd.grad(F.cross_entropy(net(x, w), y), list(alphas.values()))

    best = {}
    for r in range(args.rounds + 1):  # round 0 warms up
        for impl in ("reference", "fast"):
            net.impl = impl
            for mode in ("w", "a"):
                t = time.thread_time()
                run(mode)
                if r:
                    best[impl, mode] = min(best.get((impl, mode), float("inf")), time.thread_time() - t)
    for impl in ("reference", "fast"):
        print(f"{impl:10s} weight pass {best[impl, 'w']:7.2f} s  arch pass {best[impl, 'a']:7.2f} s  "
              f"both {best[impl, 'w'] + best[impl, 'a']:7.2f} s")
    ref, fast = (best[i, "w"] + best[i, "a"] for i in ("reference", "fast"))
    print(f"speed-up {ref / fast:.2f}x (batch {args.batch}, {torch.get_num_threads()} thread(s))")


if __name__ == "__main__":
    main()
