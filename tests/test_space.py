"""The DARTS space: ops, edges, derivation, PC-DARTS edges, fast vs reference, costs."""
import json
import random

import pytest
import torch
from helpers import tiny_space

from archsearch.errors import GenotypeError
from archsearch.objectives.supervised import classifier_head
from archsearch.spaces.darts.cost import network_cost
from archsearch.spaces.darts.genotype import (
    Genotype,
    derive_cell,
    edge_sources,
    node_offsets,
    published_genotypes,
)
from archsearch.spaces.darts.ops import DARTS_OPS, create_op
from archsearch.spaces.darts.supernet import MixedEdge, channel_shuffle

FULL = [DARTS_OPS] * 14


@pytest.mark.parametrize("name", list(DARTS_OPS) + ["noise", "sep_conv_7x7", "conv_7x1_1x7"])
@pytest.mark.parametrize("stride", [1, 2])
def test_op_shapes(name, stride):
    for h in (32, 28, 8):
        x = torch.randn(2, 4, h, h)
        for search in (True, False):
            y = create_op(name, 4, stride, affine=not search, search=search)(x)
            assert y.shape == (2, 4, h // stride, h // stride)


def test_noise_op_ignores_input_and_passes_no_gradient():
    op = create_op("noise", 4, 1, affine=False, search=True)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    y = op(x)
    assert not y.requires_grad
    assert abs(y.mean().item()) < 0.2 and 0.8 < y.std().item() < 1.2


def test_edge_order_and_offsets():
    assert node_offsets(4) == [0, 2, 5, 9]
    src = edge_sources(4)
    assert len(src) == 14
    assert [e for e, (_, s) in enumerate(src) if s < 2] == [0, 1, 2, 3, 5, 6, 9, 10]


def _weights(rows):
    w = torch.full((14, 8), 0.01)
    for e, vals in rows.items():
        w[e] = torch.tensor(vals)
    return w


def test_derivation_skips_none_even_when_it_dominates():
    w = torch.full((14, 8), 0.0)
    w[:, 0] = 0.9  # none is the largest everywhere
    for e in range(14):
        w[e, 1 + e % 7] = 0.05 + 0.001 * e  # a distinct second-best op per edge
    cell = derive_cell(w, FULL, 4)
    assert all(op != "none" for op, _ in cell)
    # node 0: edges 0 and 1; edge 1 is stronger -> listed first
    assert cell[0] == (DARTS_OPS[2], 1) and cell[1] == (DARTS_OPS[1], 0)
    # node 3: edges 9..13, the two strongest are 13 and 12 (sources 4 and 3)
    assert [s for _, s in cell[6:8]] == [4, 3]


def test_derivation_ties_keep_lower_source_and_lower_op():
    w = torch.zeros(14, 8)
    w[:, 4] = 0.5
    w[:, 5] = 0.5  # sep3 and sep5 tie on every edge; every edge ties with every other
    cell = derive_cell(w, FULL, 4)
    assert all(op == "sep_conv_3x3" for op, _ in cell)
    assert [s for _, s in cell] == [0, 1, 0, 1, 0, 1, 0, 1]


def test_derivation_in_reduced_spaces_may_pick_skip_and_noise():
    s4 = tiny_space("darts-s4")
    w = {"normal": torch.tensor([[0.9, 0.1]] * 14), "reduce": torch.tensor([[0.2, 0.8]] * 14)}
    g = s4.derive(w)
    assert {op for op, _ in g.normal} == {"noise"}
    assert {op for op, _ in g.reduce} == {"sep_conv_3x3"}
    s1 = tiny_space("darts-s1")
    g1 = s1.derive({"normal": torch.tensor([[0.7, 0.3]] * 14), "reduce": torch.tensor([[0.7, 0.3]] * 14)})
    # S1 edge 5 (c_{k-2} -> node 2) lists max_pool first; node 2's edges 5..8 all have 0.7
    assert g1.normal[4] == ("max_pool_3x3", 0)
    assert tiny_space("darts-s3").arch_shapes()["normal"] == (14, 3)


def test_edge_normalisation_changes_edges_not_ops():
    sp = tiny_space("darts")
    torch.manual_seed(0)
    a = {k: torch.softmax(torch.randn(14, 8), -1) for k in ("normal", "reduce")}
    plain = sp.derive(a)
    beta = torch.zeros(14)
    beta[[0, 1]] = 0.0
    # node 3 (edges 9..13): strongly favour the edges of sources 0 and 1
    beta[9:14] = torch.tensor([5.0, 5.0, -5.0, -5.0, -5.0])
    from archsearch.strategies.pcdarts import node_softmax
    edges = node_softmax(beta, sp.edge_groups())
    normed = sp.derive({**a, "normal_edges": edges, "reduce_edges": edges})
    assert sorted(s for _, s in normed.normal[6:8]) == [0, 1]
    assert normed.normal[:6] == plain.normal[:6]  # uniform betas leave nodes 0-2 alone
    # whichever edge is kept, its op is the argmax of alpha on that edge
    for op, s in normed.normal:
        e = [e for e, (t, src) in enumerate(edge_sources(4)) if src == s and t == normed.normal.index((op, s)) // 2][0]
        assert op == DARTS_OPS[1 + a["normal"][e, 1:].argmax().item()]


def test_channel_shuffle_permutation():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    y = channel_shuffle(x, 4).flatten().tolist()
    # output channel c*K + g = input channel g*(C/K) + c, C/K = 2
    assert y == [0, 2, 4, 6, 1, 3, 5, 7]


@pytest.mark.parametrize("stride", [1, 2])
def test_partial_channel_edge_shapes_and_bypass(stride):
    k, c = 4, 8
    edge = MixedEdge(DARTS_OPS, c, stride, partial=k)
    x = torch.randn(2, c, 8, 8)
    w = torch.zeros(8)  # every op weight zero: only the bypass is left
    y = edge(x, w)
    assert y.shape == (2, c, 8 // stride, 8 // stride)
    xb = x[:, c // k:]
    if stride == 2:
        xb = torch.nn.functional.max_pool2d(xb, 2, 2)
    expect = channel_shuffle(torch.cat([torch.zeros_like(xb[:, : c // k]), xb], 1), k)
    torch.testing.assert_close(y, expect)
    assert all(o is not None for o in edge.ops) and edge.ops[4][0][1].in_channels == c // k


def test_one_hot_round_trip_and_sampling_validity():
    sp = tiny_space("darts")
    rng = random.Random(0)
    for _ in range(20):
        g = sp.sample(rng)
        assert all(op != "none" for op, _ in g.normal + g.reduce)
        for i in range(4):
            assert g.normal[2 * i][1] != g.normal[2 * i + 1][1]
        back = sp.derive(sp.one_hot(g))
        for kind in ("normal", "reduce"):
            for i in range(4):
                assert set(getattr(back, kind)[2 * i: 2 * i + 2]) == set(getattr(g, kind)[2 * i: 2 * i + 2])


def test_supernet_param_counts_match_the_papers():
    from archsearch.config import SpaceConfig, component
    from archsearch.spaces import create_space
    head = lambda n: lambda c: classifier_head(c, n)  # noqa: E731
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(create_space(component(SpaceConfig)).build_supernet(3, 32, head(10))) == 1_930_618
    assert count(create_space(component(SpaceConfig, partial_channels=4)).build_supernet(3, 32, head(10))) == 299_578
    net = create_space(component(SpaceConfig, partial_channels=2)).build_supernet(3, 224, head(1000))
    assert count(net) == 956_512


def test_genotype_cost_against_hand_count():
    # One normal cell then one reduction cell (layers=2 puts reductions at 0 and 1, so use
    # layers=3: cell 0 normal, cells 1 and 2 reduce), C=2, 1 input channel, 2 classes.
    cell_n = (("skip_connect", 0), ("sep_conv_3x3", 1)) + (("skip_connect", 0), ("skip_connect", 1)) * 3
    cell_r = (("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 4
    g = Genotype(cell_n, (2, 3, 4, 5), cell_r, (2, 3, 4, 5))
    c = network_cost(g, init_channels=2, layers=3, num_classes=2, in_channels=1, image_size=8)
    stem = 1 * 6 * 9 + 2 * 6                     # conv 3x3 1->6, BN(6)
    cell0 = (6 * 2 + 4) + (6 * 2 + 4)            # two ReLUConvBN 1x1 6->2
    cell0 += 2 * (9 * 2 + 2 * 2 + 2 * 2)         # sep_conv_3x3 at C=2: 2(k^2 C + C^2 + 2C)
    cell1 = (6 * 4 + 8) + (8 * 4 + 8)            # reduce, C=4: preprocess 6->4 and 8->4
    cell2 = (8 * 8 + 2 * 8) + (16 * 8 + 16)      # reduce, C=8, prev reduced: FR 8->8 (two 8x4 convs + BN 8), RCB 16->8
    head = 32 * 2 + 2
    assert c.params == stem + cell0 + cell1 + cell2 + head


def test_genotype_json_round_trip_and_validation(tmp_path):
    g = published_genotypes()["DARTS_V2"]
    g.save(tmp_path / "g.json")
    assert Genotype.load(tmp_path / "g.json") == g
    bad = g.to_dict()
    bad["normal"][3] = ["sep_conv_3x3", 7]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(GenotypeError, match=r"normal\[3\]: node 1 can only take inputs 0..2"):
        Genotype.load(tmp_path / "bad.json")
    (tmp_path / "trunc.json").write_text('{"normal": [["sep')
    with pytest.raises(GenotypeError, match="not valid JSON"):
        Genotype.load(tmp_path / "trunc.json")
    bad = g.to_dict()
    bad["reduce"][0][0] = "conv_9x9"
    (tmp_path / "op.json").write_text(json.dumps(bad))
    with pytest.raises(GenotypeError, match="unknown operation 'conv_9x9'"):
        Genotype.load(tmp_path / "op.json")
