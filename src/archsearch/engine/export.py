"""`archsearch export`: a trained network as TorchScript or ONNX, checked against PyTorch.

The model file (model.pt / best.pt of a training run) carries the config, the architecture and
the dataset shape, so the network is rebuilt without the data. Every export is run once on a
random batch and compared with the PyTorch outputs before it is reported as written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from archsearch.config import TrainConfig, load_config
from archsearch.data import DatasetInfo
from archsearch.engine.train import build_network
from archsearch.errors import CheckpointError, ConfigError
from archsearch.models import create_family
from archsearch.registry import Registry
from archsearch.utils.io import load_checkpoint

EXPORTERS: Registry[Callable[[torch.nn.Module, torch.Tensor, Path], torch.Tensor]] = Registry("export format")


def load_model(ref: Path) -> tuple[torch.nn.Module, int, int]:
    """The network of a model file (or a training run's model.pt) in eval mode, its input channels and size."""
    path = Path(ref)
    if path.is_dir():
        path = path / "model.pt"
    m = load_checkpoint(path)
    if m.get("kind") != "model":
        raise CheckpointError(f"{path} is not a model file (use model.pt or best.pt of a training run)")
    try:
        cfg = load_config(None, schema=TrainConfig, base=m["config"])
        info = DatasetInfo(**{k: tuple(v) if isinstance(v, list) else v for k, v in m["info"].items()})
        arch = create_family(cfg.model.name).arch_from_dict(m["arch"])
        model, objective = build_network(cfg, arch, info)
        model.load_state_dict(m["state_dict"])
        in_channels = objective.input_channels(info.in_channels)
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path} does not rebuild a network: {type(e).__name__}: {e}") from None
    return model.eval(), in_channels, info.image_size


@EXPORTERS.register("torchscript")
def _torchscript(model, example, out: Path) -> torch.Tensor:
    traced = torch.jit.trace(model, example)
    traced.save(str(out))
    return torch.jit.load(str(out))(example)


@EXPORTERS.register("onnx")
def _onnx(model, example, out: Path) -> torch.Tensor:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("ONNX export needs the export extras: pip install 'archsearch[export]'") from None
    torch.onnx.export(model, (example,), str(out), input_names=["images"], output_names=["logits"],
                      dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), dynamo=True,
                      external_data=False)  # one self-contained file
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": example.numpy()})[0])


SUFFIX = {"torchscript": ".ts", "onnx": ".onnx"}


def export(ref: Path, fmt: str, out: Path | None = None, atol: float = 1e-4) -> tuple[Path, float]:
    """Write the exported model; returns its path and the largest output difference from PyTorch."""
    exporter = EXPORTERS.get(fmt)
    model, channels, size = load_model(ref)
    src = Path(ref)
    out = Path(out) if out else (src if src.is_dir() else src.parent) / f"model{SUFFIX[fmt]}"
    example = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(example)
        got = exporter(model, example, out)
    diff = float((got - expected).abs().max())
    if not diff <= atol * max(1.0, float(expected.abs().max())):
        out.unlink(missing_ok=True)
        raise CheckpointError(f"the {fmt} export differs from PyTorch by {diff:.3g}; nothing written")
    return out, diff
