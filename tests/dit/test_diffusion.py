import math

import pytest
import torch

from latentaudio.dit.diffusion import RectifiedFlow, VObjective, make_objective

OBJECTIVES = ["v", "rectified_flow"]


@pytest.fixture
def data():
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 3, 7, generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    t = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])
    return x0, noise, t


@pytest.mark.parametrize("name", OBJECTIVES)
def test_exact_target_recovers_data_and_noise(name, data):
    objective = make_objective(name)
    x0, noise, t = data
    x_t = objective.noisy(x0, noise, t)
    target = objective.target(x0, noise, t)
    torch.testing.assert_close(objective.denoised(x_t, target, t), x0, atol=1e-5, rtol=0)
    torch.testing.assert_close(objective.eps_from(x_t, target, t), noise, atol=1e-5, rtol=0)


def test_schedules():
    t = torch.tensor([0.0, 0.5, 1.0])
    v, rf = VObjective(), RectifiedFlow()
    torch.testing.assert_close(v.alpha(t) ** 2 + v.sigma(t) ** 2, torch.ones(3))
    torch.testing.assert_close(v.alpha(t)[1], torch.tensor(math.cos(math.pi / 4)))
    torch.testing.assert_close(rf.alpha(t) + rf.sigma(t), torch.ones(3))
    x0, noise = torch.ones(3, 1), torch.full((3, 1), 2.0)
    torch.testing.assert_close(rf.noisy(x0, noise, t), torch.tensor([[1.0], [1.5], [2.0]]))
    torch.testing.assert_close(rf.target(x0, noise, t), torch.ones(3, 1))


@pytest.mark.parametrize("name", OBJECTIVES)
def test_time_sampling(name):
    uniform = make_objective(name, t_min=0.01, t_max=0.99)
    t = uniform.sample_time(4000, generator=torch.Generator().manual_seed(0))
    assert t.shape == (4000,) and t.min() >= 0.01 and t.max() <= 0.99
    assert abs(t.mean().item() - 0.5) < 0.02
    logit = make_objective(name, time_sampling="logit_normal", logit_mean=1.0, logit_std=0.5)
    t = logit.sample_time(4000, generator=torch.Generator().manual_seed(0))
    assert 0.0 < t.min() and t.max() < 1.0
    assert abs(torch.logit(t).mean().item() - 1.0) < 0.05
    again = logit.sample_time(4000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(t, again)


@pytest.mark.parametrize("name", OBJECTIVES)
def test_loss(name, data):
    objective = make_objective(name)
    x0, noise, t = data
    target = objective.target(x0, noise, t)
    loss, per_item = objective.loss(target, target, t)
    assert loss.item() == 0.0 and per_item.shape == (5,)
    out = target + 1.0
    loss, per_item = objective.loss(out, target, t)
    torch.testing.assert_close(per_item, torch.ones(5))
    weighted, per_item = objective.loss(out, target, t, weighting="min_snr")
    assert torch.isfinite(per_item).all() and per_item[0] == 0.0  # no x0 error possible at t = 0
    # the weighting is Min-SNR on the x0 error: out is off by 1, x0 by x0_sensitivity(t)
    expected = objective.snr(t).clamp(max=5.0) * objective.x0_sensitivity(t) ** 2
    torch.testing.assert_close(per_item, expected)
    mask = torch.zeros(5, 7, dtype=torch.bool)
    mask[:, :3] = True
    out_masked = out.clone()
    out_masked[..., 3:] = 100.0  # ignored frames
    _, per_item = objective.loss(out_masked, target, t, mask=mask)
    torch.testing.assert_close(per_item, torch.ones(5))


def test_make_objective_rejects_unknown():
    with pytest.raises(ValueError, match="rectified_flow"):
        make_objective("eps")
    with pytest.raises(ValueError, match="time_sampling"):
        make_objective("v", time_sampling="beta")
