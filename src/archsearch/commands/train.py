"""`archsearch train [PRESET] (--genotype REF | --run DIR)`: train a found architecture from scratch."""
from __future__ import annotations

import json
from pathlib import Path

from archsearch.commands import COMMANDS
from archsearch.errors import ConfigError


@COMMANDS.register("train")
def register(sub) -> None:
    t = sub.add_parser("train", help="train a found architecture from scratch (evaluation)")
    t.add_argument("args", nargs="*", metavar="[PRESET] key=value",
                   help="a training preset (default train_fashionmnist) and key=value overrides")
    which = t.add_mutually_exclusive_group()
    which.add_argument("--genotype",
                       help="published genotype name, or a genotype file or text in any format `archsearch "
                            "genotype` reads (archsearch JSON, DARTS Genotype(...) repr, pycls/UnNAS YAML)")
    which.add_argument("--run", help="a search run directory (its genotype.json)")
    t.add_argument("--out", help="run directory (default runs/<name>); an existing run resumes")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=run)


def run(args) -> int:
    from archsearch.config import TrainConfig, load_config
    from archsearch.engine.train import run_train
    from archsearch.presets import resolve_config

    preset = [a for a in args.args if "=" not in a]
    overrides = [a for a in args.args if "=" in a]
    if len(preset) > 1:
        raise ConfigError(f"one training preset at most, got {' '.join(preset)}")
    path = resolve_config(preset[0] if preset else "train_fashionmnist")
    ref = args.genotype or args.run
    if ref:
        # OmegaConf reads an override's value as YAML: quoted (a JSON string is a YAML scalar), a
        # genotype given as a YAML list or a JSON object stays the text the model family resolves
        overrides.append(f"model.genotype={json.dumps(ref)}")
    cfg = load_config(path, overrides, schema=TrainConfig)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    summary = run_train(cfg, out, progress=False if args.no_progress else None)
    if summary:  # rank 0
        print(f"run directory: {out}")
        print(f"  {summary['params_M']:.3f}M params, {summary['mult_adds_M']:.1f}M mult-adds")
        print(f"  test: {', '.join(f'{k}={v:.4f}' for k, v in summary['final'].items())}")
        best = summary["best"]
        key = next(k for k in best if k != "epoch")  # test_top1, test_miou, ...
        print(f"  best {key} {best[key]:.4f} at epoch {best['epoch']}")
    return 0
