"""`archsearch import sgnas CHECKPOINT PRIOR_POOL --out RUN`: the SGNAS authors' generator as a run.

The authors release `pretrained/imagenet/best_avg.pth` (a dict whose `model` entry is the
generator's state_dict, saved from CUDA tensors) and `prior_pool.json`. The run directory written
here (config.yaml: a preset, sgnas_imagenet by default, with the released decoding; checkpoint.pt:
the strategy state with their weights under our names and their priors as our buffers; import.json:
where it came from) is what `archsearch generate` reads. It holds no supernet: it cannot resume a
search.

Checked against eric8607242/SGNAS at HEAD 5f2beeb, so that the imported generator gives the
authors' architectures on their weights:

* utils/generator.py, `SinGenerator(hc_dim=10, input_dim=1)` with layer_nums 5, hidden 32:
  `hc_head` (3 conv+ReLU) on the target map, `bb_head` (2) on the prior, summed, then
  tail(body(head(f)) + f) with `body.block1..3` and `tail.0` the only conv with a bias: the
  network of strategies/sgnas/generator.py, key for key (RELEASED_KEYS), shapes equal.
* The checkpoint: `{"model": state_dict, "optimzier": ...}` (sic), loaded with
  `torch.load(...)["model"]` by train_imagenet.py's `get_model`; here with weights_only=True and
  map_location="cpu" (the tensors were saved on CUDA).
* utils/prior_pool.py: the JSON maps a FLOPs key (`int(key)`) to a 19 x 24 one-hot list;
  `get_prior` takes the key nearest to the target, the first on ties; our `logits` does the same
  on buffers kept in file order. The target enters as (T - low) / (high - low) broadcast to hc_dim
  channels (utils/util.py `min_max_normalize`, low 270, high 450 in config_file/imagenet_config.yml).
* A row is 6 groups of 4 columns, one group per sub-block, in the order of `l_cfgs`' kernels
  [3, 5, 7, "skip"] (utils/lookup_table_builder.py `encode_arch_param`): our (S, K+1) order.
* Decoding (utils/lookup_table_builder.py `get_validation_arch_param` then `decode_arch_param`):
  argmax per group, over the three kernels only in sub-block 0 (every layer is in
  `static_layers`), skip groups dropped, kernels kept in sub-block order, which utils/model.py
  turns into the depthwise groups in that order: `space.decoding=released`.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path

import torch

from archsearch.config import load_config, to_dict, to_yaml
from archsearch.data import static_dataset_info
from archsearch.engine.runinfo import bind_space
from archsearch.engine.search import CHECKPOINT_FORMAT
from archsearch.errors import CheckpointError, ConfigError
from archsearch.spaces.mobile.layout import Layout
from archsearch.strategies import create_strategy
from archsearch.strategies.sgnas.generator import ArchitectureGenerator
from archsearch.utils.io import atomic_torch_save, atomic_write_json, atomic_write_text, safe_torch_load

SOURCE = "eric8607242/SGNAS"
# The released search: no forced sampling in supernet training, the decoding of decode_arch_param.
RELEASED_OVERRIDES = ["space.decoding=released", "space.forced_sampling=false"]


def _released_keys(body: int = 3) -> dict[str, str]:
    keys = {f"hc_head.{i}.conv.weight": f"constraint.{2 * i}.weight" for i in range(3)}
    keys |= {f"bb_head.{i}.conv.weight": f"prior.{2 * i}.weight" for i in range(2)}
    keys["head.conv.weight"] = "head.0.weight"
    keys |= {f"body.block{i + 1}.conv.weight": f"body.{2 * i}.weight" for i in range(body)}
    return keys | {"tail.0.weight": "tail.weight", "tail.0.bias": "tail.bias"}


RELEASED_KEYS = _released_keys()  # the authors' generator keys -> ours (convs sit at even indices)


def read_generator(path: Path, ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our generator's state_dict from the authors' checkpoint (or a bare state_dict in their
    key layout); `ours` gives the names and shapes it must fill."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"generator checkpoint not found: {path}")
    ckpt = safe_torch_load(path)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not the released generator: expected a dict whose `model` entry is its "
                              "state_dict")
    missing = [k for k in RELEASED_KEYS if k not in state]
    extra = [k for k in state if k not in RELEASED_KEYS]
    if missing or extra:
        raise CheckpointError(f"{path} is not the released generator's layout: missing keys {missing[:4]}, "
                              f"unexpected keys {extra[:4]}")
    out = {}
    for theirs, name in RELEASED_KEYS.items():
        t, want = state[theirs], ours[name]
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise CheckpointError(f"{path}: {theirs} is not a floating-point tensor")
        if t.shape != want.shape:
            raise CheckpointError(f"{path}: {theirs} has shape {tuple(t.shape)}, the generator's {name} needs "
                                  f"{tuple(want.shape)}")
        if not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: {theirs} holds NaN or infinite values")
        out[name] = t.to(want.dtype)
    return out


def read_prior_pool(path: Path, layout: Layout) -> tuple[list[float], torch.Tensor]:
    """Keys in MFLOPs (file order) and one-hot priors (N, L, S, K+1) of a prior_pool.json."""
    path = Path(path)
    try:
        pool = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"prior pool not found: {path}") from None
    except RecursionError:
        raise CheckpointError(f"{path} is not a prior pool: nested too deeply") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read prior pool {path}: {type(e).__name__}: {e}") from None
    if not isinstance(pool, dict) or not pool:
        raise CheckpointError(f"{path} is not a prior pool: expected a JSON object of FLOPs key -> one-hot rows")
    rows, s, k1 = len(layout.layers), layout.sub_blocks, layout.num_ops
    columns = "[" + ", ".join([f"k{k}" for k in layout.kernels] + ["skip"]) + "]"
    keys, priors = [], []
    for key, value in pool.items():
        where = f"{path}: key {key!r}"
        try:
            flops = float(key)
        except ValueError:
            raise CheckpointError(f"{where} is not a FLOPs value") from None
        if not math.isfinite(flops) or flops in keys:
            raise CheckpointError(f"{where} is not finite or repeats another key")
        try:
            t = torch.tensor(value, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise CheckpointError(f"{where} is not a table of numbers") from None
        if t.shape != (rows, s * k1):
            raise CheckpointError(f"{where} has shape {tuple(t.shape)}; the space needs {rows} layers x {s * k1} "
                                  f"columns ({s} sub-blocks x {columns})")
        if not ((t == 0) | (t == 1)).all():
            raise CheckpointError(f"{where} holds values other than 0 and 1")
        groups = t.view(rows, s, k1)
        ones = groups.sum(-1)
        if (ones != 1).any():
            layer, b = (ones != 1).nonzero()[0].tolist()
            raise CheckpointError(f"{where}: layer {layer}, sub-block {b} has {int(ones[layer, b])} ones among its "
                                  f"{k1} columns {columns}; a one-hot group has exactly one")
        if groups[:, 0, -1].any():
            layer = int(groups[:, 0, -1].nonzero()[0])
            raise CheckpointError(f"{where}: layer {layer} skips sub-block 0, which no released architecture does "
                                  "(every layer is static)")
        keys.append(flops)
        priors.append(groups.float())
    return keys, torch.stack(priors)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def import_sgnas(checkpoint: Path, prior_pool: Path, out: Path, config: Path) -> dict:
    """Write run directory `out` from the released generator and prior pool under the preset
    `config` (with the released decoding); returns what import.json records."""
    out = Path(out)
    if any((out / f).exists() for f in ("checkpoint.pt", "config.yaml", "run.json")):
        raise ConfigError(f"{out} already holds a run; choose another --out")
    cfg = load_config(config, RELEASED_OVERRIDES)
    if cfg.strategy.name != "sgnas" or cfg.space.name != "mobile-unified":
        raise ConfigError(f"{config} is not an sgnas search on the mobile-unified space")
    info = static_dataset_info(cfg.data)
    if info is None:
        raise ConfigError(f"dataset {cfg.data.name!r} does not say its shape and classes without its files; "
                          "use a preset on imagenet, cifar or fashion-mnist")
    keys, priors = read_prior_pool(prior_pool, bind_space(cfg, info).layout)
    weights = read_generator(checkpoint, ArchitectureGenerator(cfg.strategy.hc_dim,
                                                               cfg.strategy.hidden).state_dict())
    cfg = load_config(config, [*RELEASED_OVERRIDES, f"strategy.pool_size={len(keys)}"])
    space = bind_space(cfg, info)
    strategy = create_strategy(cfg.strategy, space)
    strategy.generator.load_state_dict(weights)
    strategy.best_generator.load_state_dict(weights)
    strategy.prior_keys.copy_(torch.tensor(keys, dtype=torch.float64))
    strategy.priors.copy_(priors)
    strategy.eval()
    evaluation = strategy.evaluate()
    strategy.best_hc.fill_(evaluation["eval_hc"])
    strategy.best_step.fill_(0)  # generate uses this generator as the kept one
    prior_archs = [space.derive({"arch": p}) for p in priors]
    record = {
        "source": SOURCE,
        "checkpoint": {"path": str(checkpoint), "sha256": _sha256(checkpoint)},
        "prior_pool": {"path": str(prior_pool), "sha256": _sha256(prior_pool)},
        "keys": {theirs: f"generator.{ours}" for theirs, ours in RELEASED_KEYS.items()},
        "decoding": space.decoding.name,
        "priors": {f"{k:g}": {"short": a.short(), "lut_flops_M": strategy.flops.discrete(a)}
                   for k, a in zip(keys, prior_archs)},
        "evaluation": {"targets_M": strategy.eval_targets(), **evaluation},
    }
    ckpt = {"format": CHECKPOINT_FORMAT, "kind": "import", "step": 0, "config": to_dict(cfg), "info": asdict(info),
            "strategy": strategy.state_dict(), "source": record["source"]}
    atomic_write_text(out / "config.yaml", to_yaml(cfg))
    atomic_torch_save(out / "checkpoint.pt", ckpt)
    atomic_write_json(out / "import.json", record)
    return record
