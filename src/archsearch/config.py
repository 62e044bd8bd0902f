"""Typed run configuration.

Presets are YAML files merged onto these dataclasses with OmegaConf, so an unknown key or a value
of the wrong type is refused before anything runs; `key=value` overrides from the command line go
through the same check. The search space, strategy, objective and evaluation model are components:
each registered component declares its own config dataclass (a subclass of the base below, next to
the component's code), and its `name` selects which dataclass the section is checked against, so an
option of another component is an error, not silently ignored. `archsearch list strategies -v`
prints every component's options. Values are checked after loading against the ranges declared on
the fields (`opt(..., low=...)`) and each config's own `check()`.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from archsearch.errors import ConfigError


def opt(default: Any, help: str = "", low: float | None = None, high: float | None = None,
        above: float | None = None) -> Any:
    """A config field with one line of help and an optional accepted range (low <= v <= high, v > above)."""
    meta = {"help": help, "low": low, "high": high, "above": above}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


class Choice(str, Enum):
    """A closed set of strings (members named as their values), checked when the config loads."""

    def __str__(self) -> str:
        return self.value


# -- component bases ------------------------------------------------------------------------------
@dataclass
class ComponentConfig:
    """A registered component; `name` picks the component and with it the dataclass of its options."""

    name: str = ""

    def check(self, where: str) -> None:
        """Cross-field rules the field ranges cannot express; raise ConfigError naming `where`."""

    def input_files(self) -> dict[str, str]:
        """{option: path} of the files this component reads besides the dataset: their content is
        part of a run's identity (engine/loop.py), so a file changed under a run is refused on resume."""
        return {}


@dataclass
class SpaceConfig(ComponentConfig):
    name: str = "darts"


@dataclass
class StrategyConfig(ComponentConfig):
    name: str = "darts"

    def cuda_graphs_refusal(self) -> Optional[str]:
        """Why `cuda_graphs=true` cannot replay this strategy's steps; None when it can."""
        return None


@dataclass
class ObjectiveConfig(ComponentConfig):
    name: str = "supervised"
    label_smoothing: float = opt(0.0, "cross-entropy label smoothing", low=0.0, high=0.99)


@dataclass
class ExecutorConfig(ComponentConfig):
    """Where a study's runs execute (studies/executors.py): this machine's processes, or Ray."""

    name: str = "local"


@dataclass
class ModelConfig(ComponentConfig):
    """An evaluation network (`archsearch list models`) and the architecture it is built from."""

    name: str = "darts-cifar"
    genotype: str = opt("", "published name, search run directory, or genotype file or text in any format")
    drop_path: float = opt(0.0, "final drop-path probability, reached linearly from 0", low=0.0, high=0.99)


AXES: dict[type, str] = {SpaceConfig: "space", StrategyConfig: "strategy", ObjectiveConfig: "objective",
                         ModelConfig: "model", ExecutorConfig: "executor"}


def _registry(base: type):
    """The registry of one axis (imported late: components import this module for the bases)."""
    kind = AXES[base]
    if kind == "space":
        from archsearch.spaces import SPACES as reg
    elif kind == "strategy":
        from archsearch.strategies import STRATEGIES as reg
    elif kind == "objective":
        from archsearch.objectives import OBJECTIVES as reg
    elif kind == "executor":
        from archsearch.studies.executors import EXECUTORS as reg
    else:
        from archsearch.models import MODELS as reg
    return reg


def component(base: type, name: str | None = None, **values) -> Any:
    """The config of the component `name` of an axis (its default when None), with `values` set."""
    reg = _registry(base)
    name = name or base.name
    cls = reg.config_class(name)
    return cls(name=name, **values)


def default_component(base: type):
    return field(default_factory=lambda: component(base))


# -- the rest of a run ----------------------------------------------------------------------------
class Split(Choice):
    portion = "portion"
    folders = "folders"


@dataclass
class GeneratedDataConfig:
    """Shape of the synthetic dataset used by tests and smoke runs."""

    channels: int = opt(3, low=1)
    image_size: int = opt(32, low=1)
    num_classes: int = opt(10, low=2)
    num_samples: int = opt(256, low=2)


@dataclass
class SegmentationDataConfig:
    """Segmentation training crops (UnNAS supp B.2): the short side is scaled to
    max(crop, int(base_size * 2**U(log2 scale_min, log2 scale_max))), then a random crop of
    data.image_size, a flip and PCA lighting; evaluation reads the full image."""

    base_size: int = opt(1024, "the reference's TEST.IM_SIZE: 1024 evaluation, 512 search", low=1)
    scale_min: float = opt(0.5, above=0.0)
    scale_max: float = opt(2.0, above=0.0)
    lighting: float = opt(0.1, "AlexNet PCA lighting std; 0 = off", low=0.0)
    pad_stride: int = opt(16, "evaluation images are zero-padded to k * pad_stride + 1 (1024 -> 1025)", low=1)

    def check(self, where: str) -> None:
        if self.scale_min > self.scale_max:
            raise ConfigError(f"{where}.scale_min must not exceed scale_max ({self.scale_min} > {self.scale_max})")


@dataclass
class DataConfig:
    name: str = opt("fashion-mnist", "the dataset (`archsearch list datasets`)")
    root: Optional[str] = opt(None, "the dataset's folder; unset: $ARCHSEARCH_DATA, then the dataset's standard places")
    split: Split = opt(Split.portion, "portion: split the train set; folders: <root>/train and <root>/val")
    train_portion: float = opt(0.5, "portion: the share of the train set the weights train on", above=0.0, high=1.0)
    shuffle_split: bool = opt(False, "portion: seeded shuffle before the cut (image folders are in class order)")
    subset: int = opt(0, "use only the first N training images (0 = all of them)", low=0)
    image_size: int = opt(0, "0 = the dataset's native size", low=0)
    batch_size: int = opt(64, low=1)
    val_batch_size: int = opt(0, "0 = batch_size", low=0)
    num_workers: int = opt(0, low=0)
    augment: bool = True
    cutout: int = opt(0, low=0)
    download: bool = False
    generated: GeneratedDataConfig = field(default_factory=GeneratedDataConfig)
    segmentation: SegmentationDataConfig = field(default_factory=SegmentationDataConfig)


class Device(Choice):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(Choice):
    float32 = "float32"
    float64 = "float64"


class Amp(Choice):
    none = "none"
    bf16 = "bf16"


class CompileBackend(Choice):
    inductor = "inductor"
    aot_eager = "aot_eager"


@dataclass
class OptimConfig:
    """The supernet weights' SGD and its cosine schedule."""

    epochs: int = opt(50, low=1)
    lr: float = opt(0.025, above=0.0)
    lr_min: float = opt(0.001, low=0.0)
    lr_warmup_epochs: int = opt(0, "linear warm-up lr*(e+1)/W for e < W (PC-DARTS ImageNet)", low=0)
    momentum: float = opt(0.9, low=0.0, high=1.0)
    weight_decay: float = opt(3e-4, low=0.0)
    grad_clip: float = opt(5.0, "0 = off", low=0.0)


@dataclass
class SearchConfig:
    name: str = opt("search", "the run directory is runs/<name> unless --out is given")
    seed: int = 2
    device: str = opt("auto", "auto | cpu | cuda | cuda:N")
    precision: Precision = opt(Precision.float32, "float64: numerical checks (rounding no longer flips ReLU kinks)")
    amp: Amp = opt(Amp.none, "bf16: autocast the supernet's forward and backward to bfloat16 (CPU and CUDA); "
                             "the parameters, the architecture optimizer and the BN statistics stay float32")
    channels_last: bool = opt(False, "supernet weights (and so every activation) channels-last, reference impl "
                                     "included; fast/batched already run their activations channels-last")
    compile: bool = opt(False, "torch.compile the supernet's forward and backward, any strategy (for GPUs: on CPU "
                               "inductor needs minutes for a tiny supernet, over 30 for C=16 x 8 cells)")
    compile_backend: CompileBackend = opt(CompileBackend.inductor, "aot_eager: trace only, no code generation "
                                                                   "(checks a strategy compiles in seconds)")
    cuda_graphs: bool = opt(False, "CUDA only, implies compile: replay the compiled passes as CUDA graphs "
                                   "(inductor's reduce-overhead mode); needs fixed batch shapes")
    sync_bn: bool = opt(True, "under torchrun: batch norm over the global batch (reproduces one process; one "
                              "all-reduce per BN layer and pass) or, false, over each rank's slice")
    steps_per_epoch: int = opt(0, "0 = one pass over the train split", low=0)
    log_every: int = opt(10, low=1)
    history_every: int = opt(10, "record the architecture weights every N steps", low=1)
    checkpoint_every: int = opt(50, "steps; a checkpoint is also written at every epoch end", low=1)
    val_batches: int = opt(0, "batches for the end-of-epoch validation (0 = whole val split)", low=0)
    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = default_component(SpaceConfig)
    strategy: StrategyConfig = default_component(StrategyConfig)
    objective: ObjectiveConfig = default_component(ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def check(self, where: str) -> None:
        from archsearch.strategies.base import check_pair

        check_pair(self.strategy.name, self.space.name)
        if self.amp != Amp.none and self.precision == Precision.float64:
            raise ConfigError("amp=bf16 and precision=float64 contradict each other; choose one")
        if self.cuda_graphs:
            _check_cuda_graphs(self)


def _check_cuda_graphs(cfg: SearchConfig) -> None:
    """What makes CUDA graphs impossible whatever the machine (engine/execution.py checks that the
    machine has CUDA: a CUDA-graph run's config.yaml must still load on a CPU-only one for plots)."""
    why = cfg.strategy.cuda_graphs_refusal()
    if why:
        raise ConfigError(f"cuda_graphs=true does not work with strategy {cfg.strategy.name!r}: {why}")
    if cfg.compile_backend != CompileBackend.inductor:
        raise ConfigError(f"cuda_graphs=true needs compile_backend=inductor, got {cfg.compile_backend}")
    if cfg.device == "cpu":
        raise ConfigError("cuda_graphs=true needs a CUDA device, and this run has none (device=cpu)")


class Schedule(Choice):
    cosine = "cosine"
    linear = "linear"
    exponential = "exponential"


class Optimizer(Choice):
    sgd = "sgd"
    rmsprop_tf = "rmsprop_tf"


@dataclass
class TrainOptimConfig:
    epochs: int = opt(600, low=1)
    lr: float = opt(0.025, above=0.0)
    lr_min: float = opt(0.0, low=0.0)
    schedule: Schedule = opt(Schedule.cosine, "see engine/schedules.py")
    gamma: float = opt(0.97, "exponential: lr * gamma**(epoch // decay_epochs)", above=0.0)
    decay_epochs: int = opt(1, low=1)
    lr_warmup_epochs: int = opt(0, "linear warm-up lr*(e+1)/W for e < W", low=0)
    optimizer: Optimizer = opt(Optimizer.sgd, "see engine/optim.py")
    momentum: float = opt(0.9, low=0.0, high=1.0)
    nesterov: bool = opt(False, "sgd")
    alpha: float = opt(0.9, "rmsprop_tf: decay of the mean square", low=0.0, high=1.0)
    eps: float = opt(1e-3, "rmsprop_tf: added inside the square root", above=0.0)
    weight_decay: float = opt(3e-4, low=0.0)
    decay_1d: bool = opt(True, "false: no weight decay on biases and norm parameters (1-D tensors)")
    grad_clip: float = opt(5.0, "0 = off", low=0.0)


@dataclass
class TrainConfig:
    """Training a found architecture from scratch (the papers' evaluation recipes)."""

    name: str = opt("train", "the run directory is runs/<name> unless --out is given")
    seed: int = 0
    device: str = opt("auto", "auto | cpu | cuda | cuda:N (under torchrun: the local rank's GPU)")
    amp: bool = opt(True, "bf16 autocast on CUDA; CPU runs in float32")
    channels_last: bool = opt(True, "1.7x faster than NCHW for these nets on CPU (BENCHMARKS.md)")
    compile: bool = opt(False, "torch.compile the model")
    sync_bn: bool = opt(False, "under DDP, batch statistics over the global batch (CPU and CUDA)")
    ema_decay: float = opt(0.0, "> 0: also evaluate an exponential moving average of the weights", low=0.0, high=1.0)
    precise_bn_samples: int = opt(0, "> 0: after each epoch, BN statistics from this many training images", low=0)
    steps_per_epoch: int = opt(0, "0 = one pass over the training set", low=0)
    eval_batches: int = opt(0, "0 = the whole test set", low=0)
    log_every: int = opt(50, low=1)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = default_component(ModelConfig)
    objective: ObjectiveConfig = default_component(ObjectiveConfig)
    optim: TrainOptimConfig = field(default_factory=TrainOptimConfig)


# -- loading ----------------------------------------------------------------------------------------
def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls)


def _component_base(tp) -> type | None:
    return next((b for b in AXES if isinstance(tp, type) and issubclass(tp, b)), None)


def _schema(cls: type, raw: Any, where: str = "") -> Any:
    """An instance of `cls` whose component fields hold the dataclass their `name` selects."""
    values = {}
    for f in dataclasses.fields(cls):
        tp = _hints(cls)[f.name]
        sub = raw.get(f.name) if isinstance(raw, dict) else None
        base = _component_base(tp)
        if base is not None:
            name = sub.get("name") if isinstance(sub, dict) else None
            if name is not None and not isinstance(name, str):
                raise ConfigError(f"{where}{f.name}.name must be a string, got {name!r}")
            values[f.name] = component(base, name)
        elif dataclasses.is_dataclass(tp):
            values[f.name] = _schema(tp, sub, f"{where}{f.name}.")
    return cls(**values)


def _source(key: str, path: Optional[Path], overrides, overrides_from: str = "the command line") -> str:
    """Where a bad key came from: the overrides if one sets it, else the preset file."""
    for o in overrides:
        k = o.split("=", 1)[0]
        if k == key or k.startswith(key + ".") or key.startswith(k + "."):
            return f" (from {overrides_from})"
    return f" (in {path})" if path else ""


def _unknown_key(e: ConfigKeyError, path: Optional[Path], overrides=(), overrides_from: str = "the command line"
                 ) -> ConfigError:
    """`strategy.order is not an option of strategy 'vimnas'; its options: ...`."""
    owner = e.object_type
    key = str(e.full_key or e.key)
    if owner is None or not dataclasses.is_dataclass(owner):
        return ConfigError(f"bad config{_source(key, path, overrides, overrides_from)}: {_one_line(e)}")
    options = ", ".join(f.name for f in dataclasses.fields(owner))
    base = _component_base(owner)
    what = f"{AXES[base]} {owner.__name__}" if base else owner.__name__
    if base is not None:
        try:
            chosen = next(n for n in _registry(base).names() if _registry(base).config_class(n) is owner)
            what = f"{AXES[base]} {chosen!r}"
        except StopIteration:
            pass
    where = _source(key, path, overrides, overrides_from)
    return ConfigError(f"{key} is not an option of {what}{where}; its options: {options}")


def _check(obj: Any, where: str = "") -> None:
    """Field ranges (opt low/high/above), then each config's own cross-field check()."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        key = f"{where}{f.name}"
        if dataclasses.is_dataclass(v):
            _check(v, key + ".")
            continue
        lo, hi, above = (f.metadata.get(k) for k in ("low", "high", "above"))
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{key} must be a finite number, got {v}")
        if lo is not None and v < lo or hi is not None and v > hi or above is not None and v <= above:
            rng = " and ".join(s for s in (f">= {lo}" if lo is not None else "", f"> {above}" if above is not None
                                           else "", f"<= {hi}" if hi is not None else "") if s)
            raise ConfigError(f"{key} must be {rng}, got {v}")
    check = getattr(obj, "check", None)
    if callable(check):
        check(where.rstrip(".") or type(obj).__name__)


def _bad_value(e: OmegaConfBaseException, path: Optional[Path], overrides=(),
               overrides_from: str = "the command line") -> ConfigError:
    """One line naming the key: `precision: invalid value 'float16', expected one of [float32, float64]`."""
    msg = str(e).splitlines()[0].strip()
    key = getattr(e, "full_key", None)
    if not key:
        return ConfigError(f"bad config{_source('', path, ())}: {_one_line(e)}")
    return ConfigError(f"{key}: {msg[0].lower() + msg[1:]}{_source(str(key), path, overrides, overrides_from)}")


def load_config(path: Optional[Path], overrides: list[str] = (), schema=SearchConfig, base: Optional[dict] = None,
                overrides_from: str = "the command line") -> Any:
    """Merge `base` (a config as a dict), a YAML preset and `key=value` overrides onto the typed schema,
    then check the values; an error in an override names `overrides_from` as its source."""
    try:
        layers = [OmegaConf.create(base)] if base is not None else []
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"config file not found: {path}")
            layers.append(OmegaConf.load(path))
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"overrides must be key=value, got {bad[0]!r}")
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        raw = OmegaConf.to_container(OmegaConf.merge(*layers))
        cfg = OmegaConf.merge(OmegaConf.structured(_schema(schema, raw)), *layers)
        obj = OmegaConf.to_object(cfg)
    except ConfigKeyError as e:
        raise _unknown_key(e, path, overrides, overrides_from) from None
    except OmegaConfBaseException as e:
        raise _bad_value(e, path, overrides, overrides_from) from None
    except ConfigError:
        raise
    except Exception as e:  # YAML syntax errors and the like
        raise ConfigError(f"cannot read config {path}: {_one_line(e)}") from None
    _check(obj)
    return obj


def defaults_like(cfg: Any) -> Optional[dict]:
    """The schema's defaults for the same components as `cfg`, as a dict: what an option that an older
    run's config lacks meant (an option is added with the default that keeps the old behaviour)."""
    names = [f"{f.name}.name={getattr(cfg, f.name).name}" for f in dataclasses.fields(cfg)
             if isinstance(getattr(cfg, f.name), ComponentConfig)]
    try:
        return to_dict(load_config(None, names, schema=type(cfg)))
    except ConfigError:  # defaults that are no valid run on their own: no older run is matched
        return None


def retarget(section: dict, base: type, name: str) -> dict:
    """A component section switched to component `name`: the options the new one also has are kept."""
    own = {f.name for f in dataclasses.fields(_registry(base).config_class(name))}
    return {**{k: v for k, v in section.items() if k in own}, "name": name}


def to_dict(cfg: Any) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg), enum_to_str=True)


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def _describe(cls: type, f: dataclasses.Field) -> tuple[str, str, str]:
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    default = default.value if isinstance(default, Enum) else default
    tp = _hints(cls)[f.name]
    choices = f" ({' | '.join(m.value for m in tp)})" if isinstance(tp, type) and issubclass(tp, Enum) else ""
    return f.name, repr(default), (f.metadata.get("help") or "") + choices


def describe_options(cls: type) -> list[tuple[str, str, str]]:
    """(option, default, help) of a config dataclass, for `archsearch list -v`."""
    return [_describe(cls, f) for f in dataclasses.fields(cls) if f.name != "name"]


def describe_run(cls: type) -> list[tuple[str, str, str]]:
    """(key, default, help) of a run config's own options, for `archsearch list run -v`: the top-level
    ones, then those of its plain sections as dotted keys (`data.batch_size`); the component sections
    (space, strategy, objective, model) are described by describe_options."""
    out, sections = [], []
    for f in dataclasses.fields(cls):
        tp = _hints(cls)[f.name]
        if _component_base(tp) is not None:
            continue
        if dataclasses.is_dataclass(tp):
            sections.append((f.name, tp))
        else:
            out.append(_describe(cls, f))
    for prefix, tp in sections:
        out += [(f"{prefix}.{k}", d, h) for k, d, h in describe_run(tp)]
    return out
