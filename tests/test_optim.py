"""Training optimizers: TensorFlow-style RMSprop against its recurrence, weight-decay groups,
step decay, and the SGNAS ImageNet preset."""
import pytest
import torch
from torch import nn

from archsearch.config import TrainOptimConfig
from archsearch.engine.optim import RMSpropTF, build_optimizer, param_groups
from archsearch.engine.schedules import epoch_lr
from archsearch.errors import ConfigError


def test_rmsprop_tf_follows_the_tensorflow_recurrence_with_lr_in_the_momentum():
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(5, dtype=torch.float64))
    opt = RMSpropTF([p], lr=0.1, alpha=0.9, eps=1e-3, momentum=0.9, weight_decay=1e-2)
    ref, ms, mom = p.detach().clone(), torch.ones(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    for lr in [0.1, 0.1, 0.01, 0.01]:  # the lr changes: only new steps are scaled
        for g in opt.param_groups:
            g["lr"] = lr
        grad = torch.randn(5, dtype=torch.float64)
        p.grad = grad.clone()
        opt.step()
        grad = grad + 1e-2 * ref  # TF: ms starts at 1, eps inside the root, lr inside the momentum
        ms = 0.9 * ms + 0.1 * grad**2
        mom = 0.9 * mom + lr * grad / torch.sqrt(ms + 1e-3)
        ref = ref - mom
        torch.testing.assert_close(p.detach(), ref, rtol=1e-12, atol=1e-12)
    # torch's RMSprop (mean square from 0, eps after the root) takes a very different first step
    q = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    q.grad = torch.tensor([1e-3], dtype=torch.float64)
    torch.optim.RMSprop([q], lr=0.1, alpha=0.9, eps=1e-3).step()
    r = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    r.grad = q.grad.clone()
    RMSpropTF([r], lr=0.1, alpha=0.9, eps=1e-3).step()
    assert abs(q.item()) > 100 * abs(r.item())


def test_decay_1d_false_spares_biases_and_norm_parameters():
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    groups = param_groups(net, 0.5, decay_1d=False)
    assert [len(g["params"]) for g in groups] == [1, 3] and [g["weight_decay"] for g in groups] == [0.5, 0.0]
    assert len(param_groups(net, 0.5, decay_1d=True)) == 1
    before = [p.detach().clone() for p in net.parameters()]
    for name in ("sgd", "rmsprop_tf"):
        o = TrainOptimConfig(optimizer=name, lr=0.1, momentum=0.0, weight_decay=0.5, decay_1d=False)
        opt = build_optimizer(net, o)
        for p in net.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
        conv_w, conv_b, bn_w, bn_b = net.parameters()
        assert not torch.equal(conv_w, before[0]), name  # the weight decays
        for p, b in zip((conv_b, bn_w, bn_b), before[1:]):
            assert torch.equal(p, b), name
        with torch.no_grad():
            for p, b in zip(net.parameters(), before):
                p.copy_(b)


def test_step_decay_every_three_epochs_after_warmup_and_bad_values():
    lrs = [epoch_lr("exponential", e, 500, 0.016, gamma=0.963, warmup=5, every=3) for e in range(10)]
    expected = [0.016 * (e + 1) / 5 for e in range(5)] + [0.016 * 0.963 ** (e // 3) for e in range(5, 10)]
    assert lrs == pytest.approx(expected)
    with pytest.raises(ConfigError, match="decay_epochs"):
        epoch_lr("exponential", 0, 10, 0.1, every=0)
    with pytest.raises(ConfigError, match="unknown optimizer 'adamw'"):
        build_optimizer(nn.Linear(2, 2), TrainOptimConfig(optimizer="adamw"))
