"""`archsearch derive RUN --selection RULE`: another selection rule on a finished search's supernet."""
from __future__ import annotations

from pathlib import Path

from archsearch.commands import COMMANDS


@COMMANDS.register("derive")
def register(sub) -> None:
    from archsearch.strategies.selection import SELECTIONS

    d = sub.add_parser("derive", help="select an architecture from a finished search's supernet by another rule "
                                      "(argmax, perturbation (DARTS-PT), sampled)")
    d.add_argument("run", help="a finished search run directory (DARTS-space strategies and random search)")
    d.add_argument("--selection", required=True, choices=SELECTIONS.names(), help="the selection rule")
    d.add_argument("--out", help="output directory (default RUN/derived/RULE); one derivation per directory")
    d.add_argument("--samples", type=int, help="sampled: architectures drawn and scored")
    d.add_argument("--batches", type=int, help="validation batches every candidate is scored on")
    d.add_argument("--bn", choices=["batch", "recompute"], help="BN statistics while scoring")
    d.add_argument("--finetune-steps", type=int, help="perturbation: weight steps after each decision")
    d.add_argument("--skip-cap", type=int, help="at most this many skip connections in the normal cell (0: no cap)")
    d.add_argument("--seed", type=int, help="perturbation: seed of the edge order")
    d.set_defaults(func=run)


def run(args) -> int:
    from archsearch.config import load_config
    from archsearch.engine.oneshot import derive
    from archsearch.strategies.selection import SelectionConfig

    given = {"rule": args.selection, "samples": args.samples, "batches": args.batches, "bn": args.bn,
             "finetune_steps": args.finetune_steps, "skip_cap": args.skip_cap, "seed": args.seed}
    overrides = [f"{k}={v}" for k, v in given.items() if v is not None]
    cfg = load_config(None, overrides, schema=SelectionConfig, overrides_from="the command line")
    out = Path(args.out) if args.out else Path(args.run) / "derived" / args.selection
    summary = derive(Path(args.run), cfg, out)
    cost = summary["eval_network"]
    print(f"{summary['rule']} selection of {args.run}: {out / 'genotype.json'}")
    print(f"  {cost['network']}: {cost['params_M']:.3f}M params, {cost['mult_adds_M']:.1f}M mult-adds")
    print(f"  {summary['architecture']}")
    return 0
