"""The EMA of weights: the plain rule, the warm-up, checkpoint round trips."""

import math

import torch
from torch import nn

from latentaudio.training.ema import EMA, ema_decay_at


def _constant_net(value: float) -> nn.Linear:
    net = nn.Linear(2, 2)
    nn.init.constant_(net.weight, value)
    nn.init.constant_(net.bias, value)
    return net


def test_plain_ema_follows_the_rule():
    net = _constant_net(0.0)
    ema = EMA(net, decay=0.9, warmup=False)
    ema.update(net)  # the first update takes the weights as they are
    nn.init.constant_(net.weight, 1.0)
    for _ in range(5):
        ema.update(net)
    assert torch.allclose(ema.average.weight, torch.full((2, 2), 1 - 0.9**5))


def test_warmup_forgets_the_initial_weights():
    net = _constant_net(0.0)
    plain, warm = EMA(net, 0.999, warmup=False), EMA(net, 0.999, warmup=True)
    for ema in (plain, warm):
        ema.update(net)
    nn.init.constant_(net.weight, 1.0)
    for _ in range(2000):
        plain.update(net)
        warm.update(net)
    initial_share_plain = 1 - float(plain.average.weight[0, 0])
    initial_share_warm = 1 - float(warm.average.weight[0, 0])
    assert math.isclose(initial_share_plain, 0.999**2000, rel_tol=1e-3)  # 13.5%: the defect
    assert initial_share_warm < 1e-3
    assert ema_decay_at(10**6, 0.999, True) == 0.999 and ema_decay_at(0, 0.999, True) < 0.2


def test_ema_state_round_trips_with_its_count():
    net = _constant_net(0.5)
    ema = EMA(net, 0.99)
    for _ in range(3):
        ema.update(net)
    other = EMA(_constant_net(0.0), 0.99)
    other.load_state_dict(ema.state_dict())
    assert int(other.averaged.n_averaged) == 3
    assert torch.equal(other.average.weight, ema.average.weight)
    assert not other.average.training and not any(p.requires_grad for p in other.average.parameters())


def test_frozen_weights_are_shared_not_copied_or_averaged():
    net = nn.Sequential(_constant_net(0.0), _constant_net(2.0))
    net[1].requires_grad_(False)  # a frozen base under a trained head, as in LoRA fine-tuning
    ema = EMA(net, decay=0.5, warmup=False)
    assert ema.average[1].weight is net[1].weight  # no second copy of the frozen base
    assert ema.average[0].weight is not net[0].weight
    ema.update(net)
    nn.init.constant_(net[0].weight, 1.0)
    ema.update(net)
    assert torch.allclose(ema.average[0].weight, torch.full((2, 2), 0.5))
    assert torch.equal(ema.average[1].weight, torch.full((2, 2), 2.0))
    assert net[0].weight.requires_grad  # the network keeps training
    # the checkpoint layout of torch's AveragedModel, which earlier checkpoints have
    assert {"averaged.n_averaged", "averaged.module.0.weight", "averaged.module.1.weight"} <= set(
        ema.state_dict()
    )
