"""Typed run configuration.

Presets are YAML files merged onto these dataclasses with OmegaConf, so an unknown key or a
value of the wrong type is refused before anything runs. `key=value` overrides from the command
line go through the same check.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from archsearch.errors import ConfigError


@dataclass
class GeneratedDataConfig:
    """Shape of the synthetic dataset used by tests and smoke runs."""

    channels: int = 3
    image_size: int = 32
    num_classes: int = 10
    num_samples: int = 256


@dataclass
class SegmentationDataConfig:
    """Segmentation training crops (UnNAS supp B.2): the short side is scaled to
    max(crop, int(base_size * 2**U(log2 scale_min, log2 scale_max))), then a random crop of
    data.image_size, a flip and PCA lighting; evaluation reads the full image."""

    base_size: int = 1024  # the reference's TEST.IM_SIZE: 1024 evaluation, 512 search
    scale_min: float = 0.5
    scale_max: float = 2.0
    lighting: float = 0.1  # AlexNet PCA lighting std; 0 = off
    pad_stride: int = 16  # evaluation images are zero-padded to k * pad_stride + 1 (1024 -> 1025)


@dataclass
class DataConfig:
    name: str = "fashion-mnist"
    root: Optional[str] = None  # else $ARCHSEARCH_DATA, then the dataset's standard places
    split: str = "portion"  # portion: split the train set; folders: <root>/train and <root>/val
    train_portion: float = 0.5
    shuffle_split: bool = False  # portion: seeded shuffle before the cut (image folders are in class order)
    subset: int = 0  # use only the first N training images (0 = all of them)
    image_size: int = 0  # 0 = the dataset's native size
    batch_size: int = 64
    val_batch_size: int = 0  # 0 = batch_size
    num_workers: int = 0
    augment: bool = True
    cutout: int = 0
    download: bool = False
    generated: GeneratedDataConfig = field(default_factory=GeneratedDataConfig)
    segmentation: SegmentationDataConfig = field(default_factory=SegmentationDataConfig)


@dataclass
class MobileSpaceConfig:
    """The SGNAS unified MobileNet space (docs/methods/sgnas.md §2). Lists left empty come from `layout`."""

    layout: str = "imagenet"  # imagenet | cifar: Table 6 and its CIFAR variant (stem/first stride 1)
    stem_channels: int = 0  # 0 = from layout
    stem_stride: int = 0
    first_channels: int = 0  # the fixed MBConv k3 e1 after the stem
    head_channels: int = 0  # the 1x1 conv before pooling
    widths: List[int] = field(default_factory=list)  # output channels per stage
    depths: List[int] = field(default_factory=list)  # unified blocks per stage
    strides: List[int] = field(default_factory=list)  # stride of each stage's first block
    sub_blocks: int = 6  # S = the largest expansion rate
    kernels: List[int] = field(default_factory=lambda: [3, 5, 7])
    min_expansion: int = 2  # fewest active sub-blocks per layer (>= 1: no layer is skipped whole)
    forced_sampling: bool = True  # one canonical arrangement per multiset (kernels sorted, skips last)
    # argmax -> architecture: forced (FS canonical form) | released (eric8607242/SGNAS: order kept,
    # only sub-block 0 never skip) | auto (forced when forced_sampling, else released)
    decoding: str = "auto"
    prune_threshold: float = 0.01  # soft weights at or below it are neither computed nor counted


@dataclass
class SpaceConfig:
    name: str = "darts"  # darts, darts-s1 .. darts-s4
    init_channels: int = 16
    layers: int = 8
    nodes: int = 4
    stem_multiplier: int = 3
    stem: str = "auto"  # cifar | imagenet | auto (imagenet stem for inputs >= 128 px)
    partial_channels: int = 1  # PC-DARTS K; 1 = every channel goes through the ops
    impl: str = "fast"  # fast | reference (every op evaluated and summed, as in the papers)
    reductions: int = 2  # 1: only the reduction cell at 1/3 depth (UnNAS segmentation supernet)
    mobile: MobileSpaceConfig = field(default_factory=MobileSpaceConfig)


@dataclass
class SgnasConfig:
    """SGNAS (docs/methods/sgnas.md §3-5): the supernet phase is strategy.warmup_epochs, the generator the rest."""

    fair_passes: int = 0  # paths per supernet step; 0 = one per expansion rate (strict); the code: 4
    sum_passes: bool = True  # gradients of the passes summed (the code) rather than averaged
    low_flops: float = 270.0  # target range in MFLOPs (conv mult-adds of the no-SE network)
    high_flops: float = 450.0
    target_step: float = 5.0  # training targets: low, low+step, ... < high, shuffled per cycle
    target_jitter: float = 0.5  # plus uniform jitter in [-jitter, jitter)
    hc_targets: int = 1  # targets whose FLOPs loss is averaged per step (1 = the code; extras skip the CE)
    eval_step: float = 10.0  # evaluation targets low, low+step, ... < high; the best generator is kept
    hc_weight: float = 3e-4  # lambda of lambda * (F - T)^2
    hc_dead_zone: float = 0.1  # no penalty within +-dead zone (the code); 0 = plain squared error
    hc_over_factor: float = 1.2  # extra factor when F > T (the code); 1 = symmetric
    tau: float = 5.0  # Gumbel-softmax temperature of the first generator epoch
    tau_decay: float = 0.95  # per generator epoch
    tau_every: float = 1.0  # length of a generator epoch in engine epochs
    hc_dim: int = 10  # channels of the broadcast target map
    hidden: int = 32  # generator width
    pool_size: int = 1  # priors in the prior pool
    prior_tolerance: float = 1.0  # MFLOPs: a prior lies this close to its key
    prior_seed: int = 0


@dataclass
class VimnasConfig:
    """VIM-NAS options (strategies vimnas-s, vimnas, vimnas-l; see strategies/vimnas.py)."""

    width: int = 14  # hidden channels of the architectural network (Table 1 of the supplement)
    kernel: int = 3
    last_relu: bool = True  # Table 1: the last CRB has its ReLU too; false = conv, batch norm
    last_norm: str = "edge"  # last BN's statistics per edge row (ours) | map: over the whole map
    prior: str = "fixed"  # fixed: N(0, I) drawn once, saved with the run | resample: every step
    noise: float = 1.0  # std of eps in A = mu + noise * eps (0 = no sampling: softmax(mu))
    mode: str = "bilevel"  # bilevel (network on val, weights on train) | joint | mixed (uses lam)
    mc_samples: int = 64  # draws behind the expected weights (derivation, history)
    stop_after: int = 0  # end the search once the derived genotype is unchanged this many steps


@dataclass
class StrategyConfig:
    name: str = "darts"
    order: int = 1  # 1 or 2 (darts, milenas)
    arch_lr: float = 3e-4
    arch_betas: List[float] = field(default_factory=lambda: [0.5, 0.999])
    arch_weight_decay: float = 1e-3
    arch_grad_clip: float = 0.0  # 0 = off (PC-DARTS ImageNet clips at 5)
    warmup_epochs: float = 0.0  # weight-only epochs before the first architecture update
    fd_radius: float = 0.01  # 2nd order: finite-difference step eps = fd_radius / ||v||
    lam: float = 1.0  # MiLeNAS lambda: alpha <- alpha - eta (dL_tr + lam dL_val)
    edge_norm: bool = True  # PC-DARTS edge-normalisation betas
    num_candidates: int = 50  # random: genotypes scored with the shared weights at the end
    candidate_batches: int = 4  # random: val batches per candidate score
    sgnas: SgnasConfig = field(default_factory=SgnasConfig)
    vimnas: VimnasConfig = field(default_factory=VimnasConfig)


@dataclass
class JigsawConfig:
    """UnNAS jigsaw puzzles (docs/methods/unnas.md §1.4)."""

    grid: int = 3  # 3x3 tiles (ImageNet, Cityscapes) or 2x2 (CIFAR-size images)
    num_permutations: int = 0  # classes; 0 = 1000 for a 3x3 grid, all 24 for 2x2
    tile_fraction: float = 0.76  # tile side = floor(fraction * cell side), the rest is a random gap
    tile_size: int = 0  # explicit tile side; 0 = from tile_fraction
    gray_prob: float = 0.3  # colour images only: chance a puzzle is shown in grayscale


@dataclass
class ColorizationConfig:
    """UnNAS colorization (docs/methods/unnas.md §1.3)."""

    bins: str = ""  # "" = the shipped in-gamut ab bins; else a .npy/.json (Q, 2) file on the 10-grid


@dataclass
class SegmentationObjectiveConfig:
    """The ASPP head (DeepLabv3): 256 channels and rates 6/12/18 to evaluate, 64 and [6] to search."""

    aspp_channels: int = 256
    aspp_rates: List[int] = field(default_factory=lambda: [6, 12, 18])


@dataclass
class ObjectiveConfig:
    name: str = "supervised"  # supervised | segmentation | rotation | colorization | jigsaw
    label_smoothing: float = 0.0
    head_dropout: float = 0.0  # supervised: dropout before the classifier (SGNAS ImageNet: 0.2)
    segmentation: SegmentationObjectiveConfig = field(default_factory=SegmentationObjectiveConfig)
    jigsaw: JigsawConfig = field(default_factory=JigsawConfig)
    colorization: ColorizationConfig = field(default_factory=ColorizationConfig)


@dataclass
class OptimConfig:
    epochs: int = 50
    lr: float = 0.025
    lr_min: float = 0.001
    lr_warmup_epochs: int = 0  # linear warm-up lr*(e+1)/W for e < W (PC-DARTS ImageNet)
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0


@dataclass
class SearchConfig:
    name: str = "search"
    seed: int = 2
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "float32"  # float32 | float64 (numerical checks: rounding no longer flips ReLU kinks)
    # under torchrun: batch norm over the global batch (reproduces one process; one all-reduce per
    # BN layer and pass) or, false, over each rank's slice (as DataParallel; far less communication)
    sync_bn: bool = True
    steps_per_epoch: int = 0  # 0 = one pass over the train split
    log_every: int = 10
    history_every: int = 10  # record softmaxed architecture weights every N steps
    checkpoint_every: int = 50  # steps; a checkpoint is also written at every epoch end
    val_batches: int = 0  # batches for the end-of-epoch validation (0 = whole val split)
    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class ModelConfig:
    """An evaluation network (`archsearch list models`) and the architecture it is built from."""

    name: str = "darts-cifar"  # darts-cifar | darts-imagenet | mobile
    genotype: str = ""  # published name, search run directory, or genotype file or text in any format
    init_channels: int = 36
    layers: int = 20
    stem_multiplier: int = 3
    auxiliary: bool = True
    aux_weight: float = 0.4
    drop_path: float = 0.2  # final drop-path probability, reached linearly from 0
    reductions: int = 2  # 1: the second reduction cell becomes a normal cell (segmentation, stride 16)
    # name=mobile (SGNAS): the search's space.mobile layout, and the released models' extras
    mobile: MobileSpaceConfig = field(default_factory=MobileSpaceConfig)
    se: bool = False
    act: str = "relu6"  # relu6 | hswish (see spaces/mobile/network.py)
    bn_momentum: float = 0.1  # PyTorch convention (the released ImageNet models: 0.001)


@dataclass
class TrainOptimConfig:
    epochs: int = 600
    lr: float = 0.025
    lr_min: float = 0.0
    schedule: str = "cosine"  # cosine | linear | exponential (see engine/schedules.py)
    gamma: float = 0.97  # exponential: lr * gamma**(epoch // decay_epochs)
    decay_epochs: int = 1
    warmup_epochs: int = 0  # linear warm-up lr*(e+1)/W for e < W
    optimizer: str = "sgd"  # sgd | rmsprop_tf (see engine/optim.py)
    momentum: float = 0.9
    nesterov: bool = False  # sgd
    alpha: float = 0.9  # rmsprop_tf: decay of the mean square
    eps: float = 1e-3  # rmsprop_tf: added inside the square root
    weight_decay: float = 3e-4
    decay_1d: bool = True  # false: no weight decay on biases and norm parameters (1-D tensors)
    grad_clip: float = 5.0  # 0 = off


@dataclass
class TrainConfig:
    """Training a found architecture from scratch (the papers' evaluation recipes)."""

    name: str = "train"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: the local rank's GPU)
    amp: bool = True  # bf16 autocast on CUDA; CPU runs in float32
    channels_last: bool = True  # 1.7x faster than NCHW for these nets on CPU (BENCHMARKS.md)
    compile: bool = False  # torch.compile the model
    sync_bn: bool = False  # under DDP, batch statistics over the global batch (CPU and CUDA)
    ema_decay: float = 0.0  # > 0: also evaluate an exponential moving average of the weights
    precise_bn_samples: int = 0  # > 0: after each epoch, BN statistics from this many training images (UnNAS: 1024)
    steps_per_epoch: int = 0  # 0 = one pass over the training set
    eval_batches: int = 0  # 0 = the whole test set
    log_every: int = 50
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: TrainOptimConfig = field(default_factory=TrainOptimConfig)


@dataclass
class CostWindowConfig:
    """Keep sampled cells whose evaluation network costs within [low, high] x the reference.

    Defaults: ResNet-56 on CIFAR-10 (855,770 params, 125,747,850 mult-adds, pycls), with cells priced
    on the CIFAR network of C=16, 20 cells, 10 classes, 32x32x3, no auxiliary head (docs/methods/unnas.md §3.1).
    """

    reference_params: int = 855_770
    reference_mult_adds: int = 125_747_850
    low: float = 0.8
    high: float = 1.2
    init_channels: int = 16
    layers: int = 20
    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 32


@dataclass
class TableConfig:
    """An external table of architectures with accuracies (e.g. a benchmark export), CSV with
    columns `genotype` (any genotype format) and `accuracy`; `per_decile` rows are drawn from each tenth."""

    path: str = ""
    per_decile: int = 0


@dataclass
class CorrelateConfig:
    """A rank-correlation study: sampled cells, briefly trained under each objective (and seed)."""

    name: str = "correlate"
    seed: int = 0  # sampling seed
    space: SpaceConfig = field(default_factory=SpaceConfig)
    num_archs: int = 12
    max_draws: int = 100_000
    window: CostWindowConfig = field(default_factory=CostWindowConfig)
    table: TableConfig = field(default_factory=TableConfig)
    objectives: List[str] = field(default_factory=lambda: ["supervised", "rotation"])
    seeds: List[int] = field(default_factory=lambda: [1])
    score: str = "top1"  # metric whose best epoch scores a run (docs/methods/unnas.md §3.3)
    # key=value overrides of the training recipe per objective (batch and lr differ, docs/methods/unnas.md §3.2)
    objective_overrides: Dict[str, List[str]] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def load_config(path: Optional[Path], overrides: list[str] = (), schema=SearchConfig) -> Any:
    """Merge a YAML preset and `key=value` overrides onto the typed schema."""
    try:
        cfg = OmegaConf.structured(schema)
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"config file not found: {path}")
            cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"overrides must be key=value, got {bad[0]!r}")
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        where = f" in {path}" if path else ""
        raise ConfigError(f"bad config{where}: {_one_line(e)}") from None
    except ConfigError:
        raise
    except Exception as e:  # YAML syntax errors and the like
        raise ConfigError(f"cannot read config {path}: {_one_line(e)}") from None
    return obj


def to_dict(cfg: Any) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg))


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
