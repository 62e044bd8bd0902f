"""Every search strategy runs a step with every objective (new ones join the grid automatically)."""
import json

import pytest
import torch

from archsearch.cli import main
from archsearch.config import load_config
from archsearch.engine.search import Search
from archsearch.objectives import list_objectives
from archsearch.strategies import list_strategies

ORDERED = {"darts", "milenas"}  # strategies with a second-order variant
DENSE = {"segmentation"}  # objectives whose labels are per-pixel maps, not classes
CASES = [(s, o, order) for s in list_strategies() for o in list_objectives()
         for order in ((1, 2) if s in ORDERED else (1,))]


def tiny_search(strategy: str, objective: str, order: int) -> Search:
    over = ["seed=3", "device=cpu", "data.name=generated", "data.batch_size=2", "data.augment=false",
            "data.generated.channels=3", "data.generated.image_size=8", "data.generated.num_samples=16",
            f"strategy.name={strategy}", f"objective.name={objective}"]
    if strategy == "sgnas":  # its own space; one supernet step, then one generator step
        over += ["space.name=mobile-unified", "space.layout=cifar", "space.depths=[1,1,1,1,1,1]",
                 "space.widths=[4,4,8,8,8,8]", "space.head_channels=8", "space.stem_channels=4",
                 "space.first_channels=4", "steps_per_epoch=2", "strategy.supernet_epochs=0.5",
                 "strategy.low_flops=0.02", "strategy.high_flops=0.04", "strategy.target_step=0.002",
                 "strategy.eval_step=0.005", "strategy.prior_tolerance=0.002"]
    else:
        over += ["space.init_channels=4", "space.layers=3"]
    if strategy in ORDERED:
        over.append(f"strategy.order={order}")
    if strategy == "random":
        over += ["strategy.selection.samples=2", "strategy.selection.batches=1"]
    if objective == "jigsaw":
        over += ["objective.grid=2", "objective.tile_size=4"]  # 8 px: 2x2 cells of 4 px
    if strategy == "pcdarts":  # C/K = 2 crashes the fast supernet's backward (reported), so C/K = 4
        over += ["space.init_channels=8", "space.partial_channels=2"]
    cfg = load_config(None, over)
    s = Search.build(cfg)
    if objective in DENSE:  # the generated images get random label maps
        g = torch.Generator().manual_seed(0)

        def with_maps(batch):
            images = batch[0]
            maps = torch.randint(0, s.data.info.num_classes, (images.shape[0], *images.shape[-2:]), generator=g)
            return images, maps

        train, val = s.next_train, s.next_val
        s.next_train = lambda: with_maps(train())
        s.next_val = lambda: with_maps(val())
    return s


@pytest.mark.parametrize("strategy,objective,order", CASES)
def test_strategy_takes_a_step_with_objective(strategy, objective, order):
    s = tiny_search(strategy, objective, order)
    weights = [p.detach().clone() for p in s.model.parameters()]
    arch = [p.detach().clone() for p in s.strategy.parameters()]
    for step in range(2 if strategy == "sgnas" else 1):
        metrics = s.strategy.step(s.context(step), s.next_train())
    assert metrics and all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert "train_loss" in metrics or "gen_loss" in metrics
    assert any(not torch.equal(a, p) for a, p in zip(weights, s.model.parameters()))
    if arch:
        assert any(not torch.equal(a, p) for a, p in zip(arch, s.strategy.parameters()))
    assert s.strategy.finalize(s.context(0)) is not None


@pytest.mark.parametrize("objective", [o for o in list_objectives() if o not in DENSE])
def test_evaluation_network_trains_with_objective(objective, tmp_path):
    out = tmp_path / objective
    rc = main([
        "train", "data.name=generated", "data.generated.image_size=16", "data.generated.channels=3",
        "data.generated.num_samples=16", "data.batch_size=4", "data.val_batch_size=4", "data.subset=0",
        "model.init_channels=4", "model.layers=3", "optim.epochs=1", "steps_per_epoch=2",
        f"objective.name={objective}",
        *(["objective.grid=2", "objective.tile_size=8"] if objective == "jigsaw" else []),
        "--genotype", "DARTS_V2", "--out", str(out), "--no-progress",
    ])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objective"] == objective and 0.0 <= summary["final"]["test_top1"] <= 1.0
    assert summary["mult_adds_M"] > 0
