import pytest
import torch

from latentaudio.dit.diffusion import make_objective
from latentaudio.dit.samplers import VALID_SAMPLERS, classifier_free_guidance, sample

# Toy data: x0 ~ N(MU, STD^2) independently per channel, so the exact denoiser is known.
MU = torch.tensor([1.5, -0.5, 0.0]).reshape(1, 3, 1)
STD = torch.tensor([0.5, 1.0, 2.0]).reshape(1, 3, 1)
NUM_SAMPLES, FRAMES = 1000, 4  # 4000 values per channel

COMBINATIONS = [
    (objective, sampler) for objective, samplers in VALID_SAMPLERS.items() for sampler in samplers
]


def exact_model(objective):
    """The optimal model output: the objective's target at the posterior means of x0 and eps."""

    def model_fn(x_t, t):
        alpha = objective.alpha(t).reshape(-1, 1, 1)
        sigma = objective.sigma(t).reshape(-1, 1, 1)
        variance = alpha**2 * STD**2 + sigma**2  # of x_t
        residual = x_t - alpha * MU
        mean_x0 = MU + alpha * STD**2 / variance * residual
        mean_eps = sigma / variance * residual
        return objective.target(mean_x0, mean_eps, t)

    return model_fn


def noise(seed: int = 0) -> torch.Tensor:
    return torch.randn(NUM_SAMPLES, 3, FRAMES, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("objective_name, sampler", COMBINATIONS)
def test_samplers_recover_gaussian_data(objective_name, sampler):
    objective = make_objective(objective_name)
    steps = {"ddim": 100, "euler": 100, "heun": 25}.get(sampler, 50)  # first-order methods need more
    x0 = sample(
        exact_model(objective), noise(), objective, sampler, steps, generator=torch.Generator().manual_seed(1)
    )
    mean = x0.mean(dim=(0, 2))
    std = x0.std(dim=(0, 2))
    # sampling error of 4000 values: about 1.6% of the std on the mean and 1.1% on the std
    torch.testing.assert_close(mean, MU.flatten(), atol=0.06 * STD.flatten().max().item(), rtol=0)
    torch.testing.assert_close(std, STD.flatten(), rtol=0.05, atol=0)


@pytest.mark.parametrize("objective_name, sampler", [("v", "dpmpp_2m_sde"), ("rectified_flow", "heun")])
def test_fixed_generator_is_deterministic(objective_name, sampler):
    objective = make_objective(objective_name)

    def run(seed):
        return sample(
            exact_model(objective),
            noise(),
            objective,
            sampler,
            8,
            generator=torch.Generator().manual_seed(seed),
        )

    first, second = run(3), run(3)
    assert torch.equal(first, second)
    if sampler == "dpmpp_2m_sde":
        assert not torch.equal(first, run(4))


def test_mismatched_sampler_raises():
    with pytest.raises(ValueError, match="valid: euler, heun"):
        sample(
            exact_model(make_objective("rectified_flow")),
            noise(),
            make_objective("rectified_flow"),
            "ddim",
            4,
        )
    with pytest.raises(ValueError, match="dpmpp_2m"):
        sample(exact_model(make_objective("v")), noise(), make_objective("v"), "nonsense", 4)


@pytest.mark.parametrize(
    "objective_name, sampler", [("v", "ddim"), ("v", "dpmpp_2m"), ("rectified_flow", "euler")]
)
def test_partial_start_from_init_and_hooks(objective_name, sampler):
    objective = make_objective(objective_name)
    init = MU + STD * noise(5)  # data from the toy distribution
    seen_times, steps_done = [], []

    def on_step(x, t_next):
        seen_times.append(t_next)
        return x

    x0 = sample(
        exact_model(objective),
        noise(),
        objective,
        sampler,
        20,
        t_start=0.3,
        init=init,
        on_step=on_step,
        progress=steps_done.append,
    )
    assert steps_done == list(range(20))
    assert seen_times[0] < 0.3 and seen_times[-1] == 0.0
    # starting from a low noise level, the result stays close to the init
    assert (x0 - init).pow(2).mean() < 0.5 * (noise() - init).pow(2).mean()
    torch.testing.assert_close(x0.std(dim=(0, 2)), STD.flatten(), rtol=0.08, atol=0)


def test_on_step_can_pin_values():
    objective = make_objective("v")
    known = torch.full((NUM_SAMPLES, 3, FRAMES), 7.0)

    def pin_first_frame(x, t_next):
        x = x.clone()
        x[..., 0] = objective.noisy(known, torch.zeros_like(known), torch.full((NUM_SAMPLES,), t_next))[
            ..., 0
        ]
        return x

    x0 = sample(exact_model(objective), noise(), objective, "ddim", 10, on_step=pin_first_frame)
    torch.testing.assert_close(x0[..., 0], known[..., 0])


def test_classifier_free_guidance():
    cond, uncond = torch.randn(4, 3, 8), torch.randn(4, 3, 8)
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 1.0), cond)
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 0.0), uncond)
    guided = classifier_free_guidance(cond, uncond, 5.0)
    rescaled = classifier_free_guidance(cond, uncond, 5.0, rescale=1.0)
    torch.testing.assert_close(rescaled.std(dim=(1, 2)), cond.std(dim=(1, 2)))
    half = classifier_free_guidance(cond, uncond, 5.0, rescale=0.5)
    torch.testing.assert_close(half, 0.5 * (guided + rescaled))
