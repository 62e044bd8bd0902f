"""Every shipped preset loads strictly, and the papers' and releases' numbers it encodes, from one table.

Each row names a preset and the values its resolved config must hold (dotted keys). The sources of
the numbers are the presets' own header comments and docs/methods/.
"""
import functools

import pytest

from archsearch.config import SearchConfig, TrainConfig, load_config
from archsearch.presets import PRESETS, list_presets
from archsearch.studies.config import CorrelateConfig, StudyConfig

SCHEMAS = {"train_": TrainConfig, "correlate_": CorrelateConfig, "study_": StudyConfig}


def schema_of(name: str):
    return next((schema for prefix, schema in SCHEMAS.items() if name.startswith(prefix)), SearchConfig)


@functools.lru_cache(maxsize=None)
def preset(name: str):
    return load_config(PRESETS / f"{name}.yaml", schema=schema_of(name))


def value(cfg, key: str):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


UNNAS_COMMON = {"space.init_channels": 16, "space.stem": "imagenet", "strategy.name": "darts", "strategy.order": 1,
                "strategy.arch_betas": [0.5, 0.999], "optim.lr_min": 0.0, "optim.momentum": 0.9,
                "optim.grad_clip": 5.0, "data.split": "portion", "data.train_portion": 0.5}


def unnas(objective, batch, lr, arch_lr, epochs, frozen, wd, cells, **extra):
    """docs/methods/unnas.md §4.1: the search protocol per dataset and pretext task."""
    return {**UNNAS_COMMON, "objective.name": objective, "data.batch_size": batch, "optim.lr": lr,
            "strategy.arch_lr": arch_lr, "optim.epochs": epochs, "strategy.arch_freeze_epochs": frozen,
            "optim.weight_decay": wd, "space.layers": cells, **extra}


IN = {"data.shuffle_split": True}  # image folders are in class order: shuffled before the cut
CITY = {"data.shuffle_split": False, "data.image_size": 321, "data.segmentation.base_size": 512}
JIG = {"objective.grid": 3, "objective.num_permutations": 1000, "objective.gray_prob": 0.3}

FACTS = {
    # DARTS, PC-DARTS, MiLeNAS, RobustDARTS searches
    "darts1_cifar10": {"optim.lr": 0.025, "optim.lr_min": 0.001, "data.batch_size": 64, "strategy.arch_lr": 3e-4,
                       "space.init_channels": 16, "space.layers": 8, "optim.epochs": 50, "strategy.order": 1},
    "darts2_cifar10": {"strategy.order": 2},
    "pcdarts_cifar10": {"space.partial_channels": 4, "data.batch_size": 256, "optim.lr": 0.1, "strategy.arch_lr": 6e-4,
                        "strategy.arch_freeze_epochs": 15, "strategy.name": "pcdarts"},
    "pcdarts_imagenet": {"space.partial_channels": 2, "strategy.arch_freeze_epochs": 35,
                         "strategy.arch_grad_clip": 5.0},
    "milenas1_cifar10": {"strategy.name": "milenas", "strategy.lam": 1.0, "strategy.order": 1},
    **{f"darts2_s{k}_cifar10": {"space.name": f"darts-s{k}", "strategy.order": 2} for k in range(1, 5)},
    # VIM-NAS
    "vimnas_cifar10": {"strategy.name": "vimnas", "strategy.arch_lr": 0.025, "optim.epochs": 1, "space.name": "darts",
                       "space.layers": 8, "space.partial_channels": 4, "strategy.edge_norm": True},
    "vimnas_cifar100": {"data.name": "cifar100"},
    "vimnas_lr0001_cifar10": {"strategy.arch_lr": 0.001, "optim.epochs": 20},
    "vimnas_imagenet": {"optim.lr": 0.5, "optim.weight_decay": 3e-5, "data.batch_size": 64, "optim.epochs": 1,
                        "strategy.arch_lr": 6e-3, "strategy.arch_weight_decay": 1e-3,
                        "strategy.arch_betas": [0.5, 0.999]},
    **{f"vimnas_s{k}_cifar10": {"space.name": f"darts-s{k}"} for k in range(1, 5)},
    "vimnas_fashionmnist": {"strategy.arch_lr": 0.025, "optim.epochs": 1, "data.name": "fashion-mnist"},
    # SGNAS
    "sgnas_imagenet": {"optim.lr": 0.045, "optim.weight_decay": 4e-5, "data.batch_size": 256,
                       "data.val_batch_size": 128, "strategy.supernet_epochs": 50, "optim.epochs": 54,
                       "strategy.arch_lr": 1e-3, "strategy.hc_weight": 3e-4, "strategy.hc_dead_zone": 0.1,
                       "strategy.hc_over_factor": 1.2, "strategy.tau": 5.0, "strategy.tau_decay": 0.95,
                       "strategy.low_flops": 270, "strategy.high_flops": 450, "strategy.target_step": 5,
                       "strategy.eval_step": 10, "space.layout": "imagenet", "objective.label_smoothing": 0.1},
    # UnNAS searches
    "unnas_cls_in1k": unnas("supervised", 64, 0.1, 3e-4, 2, 1.0, 3e-5, 8, **IN),
    "unnas_rot_in1k": unnas("rotation", 32, 0.05, 1.5e-4, 2, 1.0, 3e-5, 8, **IN),
    "unnas_col_in1k": unnas("colorization", 64, 0.1, 3e-4, 2, 1.0, 3e-5, 8, **IN),
    "unnas_jig_in1k": unnas("jigsaw", 32, 0.05, 1.5e-4, 2, 1.0, 3e-5, 8, **IN, **JIG),
    "unnas_cls_in22k": unnas("supervised", 256, 0.4, 1.2e-3, 1, 0.0, 3e-5, 8, **IN),
    "unnas_rot_in22k": unnas("rotation", 128, 0.2, 6e-4, 1, 0.0, 3e-5, 8, **IN),
    "unnas_col_in22k": unnas("colorization", 256, 0.4, 1.2e-3, 1, 0.0, 3e-5, 8, **IN),
    "unnas_jig_in22k": unnas("jigsaw", 128, 0.2, 6e-4, 1, 0.0, 3e-5, 8, **IN, **JIG),
    "unnas_rot_cityscapes": unnas("rotation", 16, 0.05, 1.5e-4, 400, 0.0, 3e-4, 12, **CITY,
                                  **{"data.segmentation.lighting": 0.1}),
    "unnas_col_cityscapes": unnas("colorization", 16, 0.05, 1.5e-4, 400, 0.0, 3e-4, 12, **CITY,
                                  **{"data.segmentation.lighting": 0.0}),
    "unnas_jig_cityscapes": unnas("jigsaw", 32, 0.1, 3e-4, 400, 0.0, 3e-4, 12, **CITY, **JIG,
                                  **{"data.segmentation.lighting": 0.1}),
    "unnas_rot_fashionmnist": {"objective.name": "rotation", "data.name": "fashion-mnist"},
    "unnas_jig_fashionmnist": {"objective.name": "jigsaw", "data.name": "fashion-mnist", "objective.grid": 2,
                               "data.image_size": 28},
    # training recipes
    "train_cifar10": {"model.init_channels": 36, "model.layers": 20, "optim.epochs": 600, "data.batch_size": 96,
                      "optim.lr": 0.025, "optim.weight_decay": 3e-4, "data.cutout": 16, "model.drop_path": 0.3},
    "train_cifar100": {"optim.weight_decay": 5e-4},
    "train_imagenet": {"model.name": "darts-imagenet", "model.init_channels": 48, "model.layers": 14,
                       "data.batch_size": 1024, "optim.lr": 0.5, "optim.schedule": "linear",
                       "optim.weight_decay": 3e-5, "objective.label_smoothing": 0.1},
    "train_imagenet_milenas": {"optim.lr": 0.1, "optim.schedule": "exponential", "optim.gamma": 0.97,
                               "data.batch_size": 128},
    "train_sgnas_imagenet": {"optim.optimizer": "rmsprop_tf", "optim.lr": 0.016, "optim.alpha": 0.9,
                             "optim.eps": 1e-3, "optim.momentum": 0.9, "optim.weight_decay": 1e-5,
                             "optim.decay_1d": False, "optim.schedule": "exponential", "optim.gamma": 0.963,
                             "optim.decay_epochs": 3, "optim.lr_warmup_epochs": 5, "optim.epochs": 500,
                             "ema_decay": 0.99995, "data.batch_size": 256, "objective.label_smoothing": 0.1,
                             "objective.head_dropout": 0.2, "model.name": "mobile", "model.se": True,
                             "model.act": "hswish", "model.bn_momentum": 0.001},
    "train_cityscapes": {"model.layers": 12, "model.reductions": 1, "model.auxiliary": False,
                         "data.image_size": 769, "optim.lr": 0.1, "optim.epochs": 2700, "optim.nesterov": True,
                         "optim.weight_decay": 1e-4, "objective.aspp_channels": 256,
                         "objective.aspp_rates": [6, 12, 18], "data.batch_size": 64,
                         "data.segmentation.base_size": 1024},
}


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_loads_strictly_with_its_name(name):
    assert preset(name).name == name


@pytest.mark.parametrize("name", sorted(FACTS))
def test_preset_keeps_its_numbers(name):
    cfg = preset(name)
    got = {k: value(cfg, k) for k in FACTS[name]}
    assert got == FACTS[name]


def test_the_cityscapes_searches_share_the_segmentation_split():
    seg = preset("darts_cityscapes_seg")
    for name in ("unnas_rot_cityscapes", "unnas_col_cityscapes", "unnas_jig_cityscapes"):
        assert (preset(name).seed, preset(name).data.image_size) == (seg.seed, seg.data.image_size)
