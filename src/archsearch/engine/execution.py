"""How the supernet executes in a search: memory format, torch.compile, CUDA graphs.

Each is a SearchConfig option, off by default and checked when the config loads. The supernet
is compiled in place (`nn.Module.compile`), so its state_dict, checkpoints and the strategies'
`functional_call` see the plain module; every strategy calls the compiled forward unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from archsearch.config import SearchConfig
from archsearch.errors import ConfigError


def check_machine(cfg: SearchConfig) -> None:
    """Refuse options this machine cannot run, right after the config loads (SearchConfig.check
    holds what no machine can run; a run's config.yaml must load anywhere for plots)."""
    if cfg.cuda_graphs and not torch.cuda.is_available():
        raise ConfigError(f"cuda_graphs=true needs a CUDA device, and this machine has none (device={cfg.device}, "
                          "torch.cuda.is_available() is False)")


def compiles(cfg: SearchConfig) -> bool:
    return cfg.compile or cfg.cuda_graphs


def prepare_supernet(model: nn.Module, cfg: SearchConfig) -> nn.Module:
    """Apply the execution options to a built supernet (on its device) and return it.

    channels-last weights make every convolution, and so every activation, channels-last (the
    fast and batched paths already convert their input). The compiled module traces each pass
    kind once (architecture gradient wanted or not, train or eval): `dynamic=False`, since a
    search's batch shape is fixed. The reference path compiles to whole graphs; the fast and
    batched paths break the graph at their custom autograd Functions (kernels.py, batched.py),
    so only the stretches between them compile and frames over dynamo's recompile limit run eager.
    """
    check_machine(cfg)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if compiles(cfg):
        mode = "reduce-overhead" if cfg.cuda_graphs else None  # inductor's CUDA graph trees
        model.compile(backend=str(cfg.compile_backend), mode=mode, dynamic=False)
    return model


def begin_step(cfg: SearchConfig) -> None:
    """Mark a new search step for CUDA graph trees: the previous step's graph outputs may be
    overwritten from here on (each step reads only its own)."""
    if cfg.cuda_graphs:
        torch.compiler.cudagraph_mark_step_begin()
