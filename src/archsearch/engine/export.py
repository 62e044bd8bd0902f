"""`archsearch export`: a trained network as TorchScript or ONNX, checked against PyTorch.

The model file (model.pt / best.pt of a training run) carries the config, the architecture and
the dataset shape, so the network is rebuilt without the data. Every export is run once on a
random batch and compared with the PyTorch outputs before it is reported as written: it is written
to a temporary file beside the destination and renamed over it only once the check passed, so a
failed export leaves whatever was there untouched; the model file itself is never the destination.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import torch

from archsearch.config import TrainConfig, load_config
from archsearch.data import DatasetInfo
from archsearch.engine.train import build_network
from archsearch.errors import CheckpointError, ConfigError
from archsearch.models import create_family
from archsearch.registry import Registry
from archsearch.utils.io import is_temp_file, load_checkpoint

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
        raise ConfigError("ONNX export needs the onnx extras: pip install 'archsearch[onnx]'") from None
    torch.onnx.export(model, (example,), str(out), input_names=["images"], output_names=["logits"],
                      dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), dynamo=True,
                      external_data=False)  # one self-contained file
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": example.numpy()})[0])


SUFFIX = {"torchscript": ".ts", "onnx": ".onnx"}


def check_destination(out: Path, model_file: Path) -> None:
    """The export's destination must be a new or replaceable file in an existing folder, not the model file."""
    if out.is_dir():
        raise ConfigError(f"--output {out} is a folder; name the file to write")
    if not out.parent.is_dir():
        raise ConfigError(f"--output {out}: the folder {out.parent} does not exist")
    if out.exists() and model_file.exists() and out.resolve() == model_file.resolve():
        raise ConfigError(f"--output {out} is the model file being exported; choose another name")


def export(ref: Path, fmt: str, out: Path | None = None, atol: float = 1e-4) -> tuple[Path, float]:
    """Write the exported model; returns its path and the largest output difference from PyTorch."""
    exporter = EXPORTERS.get(fmt)
    src = Path(ref)
    model_file = src / "model.pt" if src.is_dir() else src
    out = Path(out) if out else model_file.parent / f"model{SUFFIX[fmt]}"
    model, channels, size = load_model(model_file)
    check_destination(out, model_file)
    example = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(0))
    for stale in out.parent.iterdir():  # what a killed export to the same file left behind
        if stale.name.startswith(f".{out.name}.") and is_temp_file(stale):
            stale.unlink(missing_ok=True)
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        with torch.no_grad():
            expected = model(example)
            got = exporter(model, example, tmp)
        diff = float((got - expected).abs().max())
        if not diff <= atol * max(1.0, float(expected.abs().max())):
            kept = f"{out} left as it was" if out.exists() else "nothing written"
            raise CheckpointError(f"the {fmt} export differs from PyTorch by {diff:.3g}; {kept}")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out, diff
