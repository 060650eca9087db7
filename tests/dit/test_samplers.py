import pytest
import torch

from latentaudio.dit.diffusion import make_objective
from latentaudio.dit.samplers import (
    VALID_SAMPLERS,
    classifier_free_guidance,
    default_sampler,
    replace_known,
    resolve_sampling,
    sample,
)

# Toy data: x0 ~ N(MU, STD^2) independently per channel, so the exact denoiser is known.
MU = torch.tensor([1.5, -0.5, 0.0]).reshape(1, 3, 1)
STD = torch.tensor([0.5, 1.0, 2.0]).reshape(1, 3, 1)
NUM_SAMPLES, FRAMES = 1000, 4  # 4000 values per channel

# Ping-pong re-noises each x0 prediction: right for a few-step (distilled) model, biased for the
# posterior-mean denoiser these tests use; its parity with the peer is in tests/interop.
COMBINATIONS = [
    (objective, sampler)
    for objective, samplers in VALID_SAMPLERS.items()
    for sampler in samplers
    if sampler != "pingpong"
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


def exact_noise_to_data(z: torch.Tensor) -> torch.Tensor:
    """Where the probability-flow ODE of the toy data takes the noise ``z`` at t = 1 (both objectives)."""
    return MU + STD * z


@pytest.mark.parametrize("objective_name", ["v", "rectified_flow"])
def test_heun_never_uses_the_model_at_t_zero(objective_name):
    # A network is barely trained at t = 0 (logit-normal times never reach it, min-SNR weighting
    # gives it no weight); model that by an oracle that is exact except at t = 0 exactly.
    objective = make_objective(objective_name)
    exact, times = exact_model(objective), []

    def untrained_at_zero(x_t, t):
        times.extend(t.unique().tolist())
        return exact(x_t, t) + 100.0 * (t == 0).float().reshape(-1, 1, 1)

    z = noise()
    x0 = sample(untrained_at_zero, z, objective, "heun", 10)
    assert 0.0 not in times
    torch.testing.assert_close(x0, sample(exact, z, objective, "heun", 10))
    error = (x0 - exact_noise_to_data(z)).pow(2).mean().sqrt()
    assert error < 0.02, f"RMS error {error:.4f} against the exact ODE solution"


def strict_randn(*args, generator=None, device=None, **kwargs):
    """torch.randn as CUDA enforces it: a generator draws only on its own device."""
    if generator is not None and torch.device(device or "cpu") != generator.device:
        raise RuntimeError(f"a {generator.device} generator cannot draw on {device}")
    return TORCH_RANDN(*args, generator=generator, device=device, **kwargs)


TORCH_RANDN = torch.randn


def test_sde_sampler_draws_with_a_cpu_generator_for_a_tensor_on_another_device(monkeypatch):
    monkeypatch.setattr(torch, "randn", strict_randn)
    x = torch.randn(2, 3, 4, device="meta")
    out = sample(
        lambda x_t, t: 0.1 * x_t, x, make_objective("v"), "dpmpp_2m_sde", 4, generator=torch.Generator()
    )
    assert out.device.type == "meta" and out.shape == x.shape


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sde_sampler_on_cuda_with_a_cpu_generator_matches_the_cpu():
    objective = make_objective("v")
    z = noise()

    def run(device):
        model = exact_model(objective)
        model_fn = lambda x_t, t: model(x_t.cpu(), t.cpu()).to(device)  # noqa: E731
        generator = torch.Generator().manual_seed(1)
        return sample(model_fn, z.to(device), objective, "dpmpp_2m_sde", 8, generator=generator)

    on_cuda = run("cuda")
    assert on_cuda.device.type == "cuda"
    torch.testing.assert_close(on_cuda.cpu(), run("cpu"), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("objective_name", ["v", "rectified_flow"])
def test_replacing_known_latents_keeps_the_noise_level_across_a_crossfade(objective_name):
    objective = make_objective(objective_name)
    t, frames = 0.6, 11
    sigma = float(objective.sigma(torch.tensor(t)))
    generator = torch.Generator().manual_seed(0)
    zeros = torch.zeros(NUM_SAMPLES * 4, 3, frames)
    x = objective.noisy(zeros, torch.randn(zeros.shape, generator=generator), torch.full((len(zeros),), t))
    keep = torch.linspace(0.0, 1.0, frames).view(1, 1, frames)  # a crossfade from x to known
    out = replace_known(objective, x, zeros, keep, t, generator)
    std = out.std(dim=(0, 1))  # (frames,): 12000 values each, about 0.7% sampling error
    torch.testing.assert_close(std, torch.full((frames,), sigma), rtol=0.03, atol=0)
    # the ends stay exact: keep 0 leaves x, keep 1 is the known latents noised afresh
    assert torch.equal(out[..., 0], x[..., 0])
    hard = replace_known(objective, x, zeros, (keep > 0.5).float(), t, torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        hard[..., -1], sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))[..., -1]
    )


@pytest.mark.parametrize("objective_name", ["v", "rectified_flow"])
def test_sampling_defaults_follow_the_objective(objective_name):
    default = {"v": "dpmpp_2m", "rectified_flow": "heun"}[objective_name]
    for given in (None, {}, {"sampler": None, "steps": 20}):
        resolved = resolve_sampling(objective_name, given)
        assert resolved["sampler"] == default == default_sampler(objective_name)
        assert resolved.get("steps") == (given or {}).get("steps")
    assert resolve_sampling(objective_name, {"sampler": "euler"})["sampler"] == "euler"


def test_a_sampler_that_does_not_fit_the_objective_is_refused_naming_both_keys():
    with pytest.raises(
        ValueError, match=r"sampling.sampler=dpmpp_2m .* objective.name=rectified_flow.*euler, heun"
    ):
        resolve_sampling("rectified_flow", {"sampler": "dpmpp_2m"})
    with pytest.raises(ValueError, match="objective.name=flow"):
        resolve_sampling("flow", None)


@pytest.mark.parametrize(
    "objective_name, sampler, schedule, steps",
    [
        ("v", "dpmpp_3m_sde", "polyexponential", 50),
        ("v", "dpmpp_2m", "polyexponential", 50),
        ("rectified_flow", "euler", "logsnr", 100),
    ],
)
def test_stable_audio_schedules_recover_gaussian_data(objective_name, sampler, schedule, steps):
    objective = make_objective(objective_name)
    generator = torch.Generator().manual_seed(1)
    # sigma_min well below the data's std: from Stable Audio's 0.3 the last jump to the posterior
    # mean shrinks the narrowest channel (there too)
    extra = {"sigma_min": 0.01} if schedule == "polyexponential" else {}
    x0 = sample(
        exact_model(objective),
        noise(),
        objective,
        sampler,
        steps,
        generator=generator,
        schedule=schedule,
        **extra,
    )
    torch.testing.assert_close(
        x0.mean(dim=(0, 2)), MU.flatten(), atol=0.06 * STD.flatten().max().item(), rtol=0
    )
    torch.testing.assert_close(x0.std(dim=(0, 2)), STD.flatten(), rtol=0.05, atol=0)


def test_their_schedules_visit_the_documented_times():
    import math

    from latentaudio.dit.samplers import time_grid

    v, flow = make_objective("v"), make_objective("rectified_flow")
    times = time_grid(v, "polyexponential", 4, sigma_min=0.3, sigma_max=500.0)
    sigmas = [math.tan(math.pi * t / 2) for t in times[:-1]]
    assert times[-1] == 0.0 and sigmas[0] == pytest.approx(500.0) and sigmas[-1] == pytest.approx(0.3)
    assert sigmas[1] == pytest.approx(500.0 * (0.3 / 500.0) ** (1 / 3))  # log-linear with rho 1
    times = time_grid(flow, "logsnr", 8)
    assert times[0] == 1.0 and times[-1] == 0.0 and times[1] == pytest.approx(1 / (1 + math.exp(-5.0)))
    with pytest.raises(ValueError, match="valid: linear, logsnr"):
        time_grid(flow, "polyexponential", 4)
    with pytest.raises(ValueError, match="ends at t = 0"):
        time_grid(v, "polyexponential", 4, t_end=0.1)
