"""`archsearch export RUN|MODEL --format onnx|torchscript`: a trained network for deployment."""
from __future__ import annotations

from pathlib import Path

from archsearch.commands import COMMANDS


@COMMANDS.register("export")
def register(sub) -> None:
    e = sub.add_parser("export", help="export a trained network to TorchScript or ONNX")
    e.add_argument("model", help="a training run directory or a model file (model.pt, best.pt)")
    e.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    e.add_argument("--output", help="output file (default: model.onnx / model.ts next to the model)")
    e.set_defaults(func=run)


def run(args) -> int:
    from archsearch.engine.export import export

    out, diff = export(Path(args.model), args.format, Path(args.output) if args.output else None)
    print(f"wrote {out} (max |difference| from PyTorch on a random batch: {diff:.2e})")
    return 0
