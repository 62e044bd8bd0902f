"""Every search strategy runs a step with every objective (new ones join the grid automatically)."""
import json

import pytest
import torch

from archsearch.cli import main
from archsearch.config import SearchConfig
from archsearch.engine.search import Search
from archsearch.objectives import list_objectives
from archsearch.strategies import list_strategies

ORDERED = {"darts", "milenas"}  # strategies with a second-order variant
DENSE = {"segmentation"}  # objectives whose labels are per-pixel maps, not classes
CASES = [(s, o, order) for s in list_strategies() for o in list_objectives()
         for order in ((1, 2) if s in ORDERED else (1,))]


def tiny_search(strategy: str, objective: str, order: int) -> Search:
    cfg = SearchConfig(seed=3, device="cpu")
    d = cfg.data
    d.name, d.batch_size, d.augment = "generated", 2, False
    d.generated.channels, d.generated.image_size, d.generated.num_samples = 3, 8, 16
    cfg.space.init_channels, cfg.space.layers = 4, 3
    if strategy == "pcdarts":  # C/K = 2 crashes the fast supernet's backward (reported), so C/K = 4
        cfg.space.init_channels, cfg.space.partial_channels = 8, 2
    if strategy == "sgnas":  # its own space; one supernet step, then one generator step
        cfg.space.name = "mobile-unified"
        m = cfg.space.mobile
        m.layout, m.depths, m.widths, m.head_channels = "cifar", [1] * 6, [4, 4, 8, 8, 8, 8], 8
        m.stem_channels = m.first_channels = 4
        cfg.steps_per_epoch, cfg.strategy.warmup_epochs = 2, 0.5
        g = cfg.strategy.sgnas
        g.low_flops, g.high_flops, g.target_step, g.eval_step, g.prior_tolerance = 0.02, 0.04, 0.002, 0.005, 0.002
    cfg.strategy.name, cfg.strategy.order = strategy, order
    cfg.strategy.num_candidates, cfg.strategy.candidate_batches = 2, 1
    cfg.objective.name = objective
    cfg.objective.jigsaw.grid, cfg.objective.jigsaw.tile_size = 2, 4  # 8 px: 2x2 cells of 4 px
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
        f"objective.name={objective}", "objective.jigsaw.grid=2", "objective.jigsaw.tile_size=8",
        "--genotype", "DARTS_V2", "--out", str(out), "--no-progress",
    ])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objective"] == objective and 0.0 <= summary["final"]["test_top1"] <= 1.0
    assert summary["mult_adds_M"] > 0
