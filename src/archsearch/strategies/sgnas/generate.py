"""`archsearch generate RUN --flops T ...`: architectures from a trained SGNAS generator.

Rebuilds the space and the strategy from the run's config and checkpoint (no data is loaded,
no supernet is built), generates all targets in one forward pass, and writes per target a JSON
file (architecture, FLOPs, params, timm block strings and recipe) plus one figure of the layers.
The run may be a search or an import of the authors' generator (interop/sgnas_release.py).
"""
from __future__ import annotations

from pathlib import Path

from archsearch.config import SearchConfig, load_config
from archsearch.engine.runinfo import bind_space, run_info
from archsearch.errors import CheckpointError, ConfigError
from archsearch.interop import timm_mobile
from archsearch.strategies import create_strategy
from archsearch.utils.io import atomic_write_json, load_checkpoint


def load_generator(run_dir: Path):
    """(strategy, space, dataset info, checkpoint step) of an SGNAS run: searched or imported."""
    run_dir = Path(run_dir)
    cfg: SearchConfig = load_config(run_dir / "config.yaml")
    if cfg.strategy.name != "sgnas":
        raise ConfigError(f"{run_dir} is a {cfg.strategy.name} run; generate needs an sgnas run")
    ckpt = load_checkpoint(run_dir / "checkpoint.pt")
    info = run_info(cfg, ckpt)
    space = bind_space(cfg, info)
    strategy = create_strategy(cfg.strategy, space)
    try:
        strategy.load_state_dict(ckpt["strategy"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{run_dir / 'checkpoint.pt'} does not fit its config.yaml: {type(e).__name__}: "
                              f"{' '.join(str(e).split())[:300]}") from None
    strategy.eval()
    return strategy, space, info, int(ckpt["step"])


def _name(t: float) -> str:
    return f"{t:g}".replace(".", "p")


def generate(run_dir: Path, targets: list[float], out_dir: Path | None = None, last: bool = False) -> list[dict]:
    """Architectures for `targets` from the kept best generator (or the last one)."""
    strategy, space, info, step = load_generator(run_dir)
    out_dir = Path(out_dir) if out_dir else Path(run_dir) / "generated"
    lo, hi = strategy.c.low_flops, strategy.c.high_flops
    archs = strategy.generate(list(targets), best=not last)
    results = []
    for t, arch in zip(targets, archs):
        record = space.cost(arch, info)
        cost = {"params_M": record["params_M"], **record["extras"]}
        rec = {
            "target_flops_M": t,
            "trained_range_M": [lo, hi],
            "inside_trained_range": lo <= t <= hi,
            "flops_M": cost["flops_M"],
            "relative_error": (cost["flops_M"] - t) / t,
            "params_M": cost["params_M"],
            "se_flops_M": cost["se_flops_M"],
            "se_params_M": cost["se_params_M"],
            "generator": "last" if last else "best",
            "best_generator_step": int(strategy.best_step),
            "checkpoint_step": step,
            "decoding": space.decoding.name,
            "architecture": space.arch_to_dict(arch),
            "timm": timm_mobile.recipe(arch, space.layout),
            "short": arch.short(),
        }
        atomic_write_json(out_dir / f"flops_{_name(t)}.json", rec)
        results.append(rec)
    from archsearch.viz.sgnas import plot_architectures

    items = [(f"target {r['target_flops_M']:g} MFLOPs -> {r['flops_M']:.3f} MFLOPs, {r['params_M']:.3f}M params", a)
             for r, a in zip(results, archs)]
    figure = plot_architectures(items, space.layout.kernels, space.layout.sub_blocks,
                                out_dir / f"layers_{'_'.join(_name(t) for t in targets)}.png")
    for r in results:
        r["figure"] = str(figure)
    return results
