"""Search execution options: channels-last, torch.compile, CUDA graphs (refused on CPU).

The compiled checks trace with `compile_backend=aot_eager` (dynamo + AOTAutograd, no code
generation), which takes seconds; inductor's CPU code generation takes minutes even for the tiny
supernet here, so its one check is marked slow. The CUDA runs are in tests/test_cuda.py.
"""
import json

import pytest
import torch
from helpers import one_line_error

from archsearch.cli import main
from archsearch.config import SearchConfig, load_config
from archsearch.engine.search import Search
from archsearch.presets import resolve_config
from archsearch.spaces.darts.genotype import Genotype
from archsearch.strategies.base import forward_loss
from archsearch.utils.io import load_checkpoint

# 3 cells of 2 nodes: small enough for dynamo to trace the reference supernet in seconds
GEN = ["data.name=generated", "data.generated.image_size=8", "data.generated.channels=1",
       "data.generated.num_classes=4", "data.generated.num_samples=64", "data.batch_size=8",
       "space.init_channels=4", "space.layers=3", "space.nodes=2", "val_batches=1", "log_every=1",
       "device=cpu"]


def _search(*overrides) -> Search:
    return Search.build(load_config(resolve_config("darts_fashionmnist"), [*GEN, *overrides], schema=SearchConfig))


def _arch_grad(s: Search, batch) -> list[torch.Tensor]:
    """dL/dalpha of one DARTS-1st architecture pass on `batch`: what the search step applies."""
    loss, _, _ = forward_loss(s.context(0), batch, s.strategy.weights())
    return list(torch.autograd.grad(loss, list(s.strategy.parameters())))


def _eager_and(overrides: list[str], impl: str, *common: str):
    """Architecture gradients of an eager and an optioned search: same seed, weights and batch."""
    eager, other = _search(f"space.impl={impl}", *common), _search(f"space.impl={impl}", *common, *overrides)
    batch = eager.next_train()
    for a, b in zip(eager.model.state_dict().values(), other.model.state_dict().values()):
        assert torch.equal(a, b)
    return _arch_grad(eager, batch), _arch_grad(other, batch), other


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_channels_last_supernet_matches_nchw(impl):
    """Same function, other memory layout: float32 rounding apart (1e-5 relative)."""
    want, got, s = _eager_and(["channels_last=true"], impl)
    convs = [p for p in s.model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_compiled_darts_architecture_gradient_equals_eager(impl):
    """The compiled supernet (graph breaks at the fast path's custom Functions) gives the eager
    architecture gradient to float32 rounding (1e-5 relative) on the same batch."""
    want, got, s = _eager_and(["compile=true", "compile_backend=aot_eager"], impl)
    assert s.model._compiled_call_impl is not None  # the forward strategies call is the compiled one
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_inductor_darts_architecture_gradient_equals_eager():
    """Inductor's generated CPU code (2.5 minutes to compile one graph on the project's 2-core VM)."""
    # C=8: oneDNN's convolutions of fewer than 8 channels corrupt the heap on some CPUs (AMD EPYC)
    want, got, _ = _eager_and(["compile=true"], "reference", "space.nodes=1", "space.init_channels=8")
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


def test_compiled_search_derives_a_valid_genotype(tmp_path):
    out = tmp_path / "run"
    one_node = ["space.nodes=1", "space.impl=reference"]  # one node per cell: traced in seconds
    assert main(["search", "darts_fashionmnist", *GEN, *one_node, "compile=true", "compile_backend=aot_eager",
                 "steps_per_epoch=2", "optim.epochs=1", "--out", str(out), "--no-progress"]) == 0
    g = Genotype.load(out / "genotype.json")
    assert len(g.normal) == len(g.reduce) == 2 and tuple(g.normal_concat) == (2,)
    eager = _search(*one_node)  # the compiled module's checkpoint is the plain supernet's
    assert list(load_checkpoint(out / "checkpoint.pt")["model"]) == list(eager.model.state_dict())


@pytest.mark.parametrize("overrides, message", [
    (["cuda_graphs=true"], "cuda_graphs=true needs a CUDA device, and this run has none (device=cpu)"),
    (["cuda_graphs=true", "device=auto"], "cuda_graphs=true needs a CUDA device"),
    (["cuda_graphs=true", "compile_backend=aot_eager"], "cuda_graphs=true needs compile_backend=inductor"),
    (["cuda_graphs=true", "strategy.order=2"], "cuda_graphs=true does not work with strategy 'darts': order=2"),
])
def test_cuda_graphs_are_refused_when_the_config_loads(tmp_path, capsys, overrides, message):
    if torch.cuda.is_available() and "device=auto" in overrides:
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    assert main(["search", "darts_fashionmnist", *GEN, *overrides, "--out", str(out), "--no-progress"]) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()


def test_bench_times_a_compiled_channels_last_step(tmp_path, capsys):
    """`archsearch bench` with execution options: the header names them, warm-up holds the compile."""
    out = tmp_path / "bench.json"
    # C=8: oneDNN's channels-last convolutions of fewer than 8 channels corrupt the heap on some CPUs
    assert main(["bench", "darts_fashionmnist", *GEN, "space.init_channels=8", "space.nodes=1", "channels_last=true",
                 "compile=true",
                 "compile_backend=aot_eager", "--impls", "reference,fast", "--steps", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "execution channels_last=true compile=true compile_backend=aot_eager" in printed
    report = json.loads(out.read_text())
    assert report["execution"] == "channels_last=true compile=true compile_backend=aot_eager"
    ref, fast = report["paths"]
    assert ref["warmup_s"] > 0 and ref["ops_per_step"] > 0 and fast["ops_per_step"] > 0
    assert ref["gflop_per_step"] == fast["gflop_per_step"] > 0 and ref["saved_mb"] > 0


def test_a_cuda_graph_config_loads_without_cuda_but_does_not_run():
    """A GPU run's config.yaml must load on a CPU-only machine (plots, generate); runs are refused
    there, by `archsearch search` and `bench` right after loading and by Search.build."""
    from archsearch.engine.execution import check_machine
    from archsearch.errors import ConfigError

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg = load_config(resolve_config("darts_fashionmnist"), [*GEN, "device=auto", "cuda_graphs=true"])
    assert cfg.cuda_graphs
    with pytest.raises(ConfigError, match="this machine has none"):
        check_machine(cfg)
    with pytest.raises(ConfigError, match="this machine has none"):
        Search.build(cfg)
    assert main(["bench", "darts_fashionmnist", *GEN, "device=auto", "cuda_graphs=true"]) == 2
