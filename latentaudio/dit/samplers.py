"""Samplers: integrate from noise (t = t_start) to data (t = t_end) with a trained model.

All samplers walk a grid of ``steps + 1`` times spaced evenly from t_start to t_end. Step
coefficients are computed in float64 Python scalars; the state keeps the input's dtype.

v objective (x_t = cos(phi) x0 + sin(phi) eps, phi = pi t / 2):
  ddim          deterministic DDIM: re-noise the x0 prediction with the eps prediction.
  euler, heun   the probability-flow ODE dx/dphi = v, first and second order.
  dpmpp_2m      DPM-Solver++(2M) (Lu et al. 2022), multistep in log-SNR.
  dpmpp_2m_sde  its SDE variant (eta = 1); draws fresh noise from ``generator``.
  dpmpp_3m_sde  DPM-Solver++(3M) SDE (eta = 1), as k-diffusion's: Stable Audio Open 1.0's sampler.
rectified flow (x_t = (1 - t) x0 + t eps):
  euler, heun   the ODE dx/dt = model output.
  pingpong      predict x0, re-noise it to the next time with fresh noise: the few-step
                sampler of Stable Audio Open Small.

Schedules (the times the steps visit):
  linear           evenly spaced from t_start to t_end (the default).
  polyexponential  v: k-diffusion's sigmas (sigma = tan(pi t / 2)) exp-spaced from sigma_max to
                   sigma_min (rho 1: log-linear), then 0: what stable-audio-tools runs its k-samplers on
                   (Stable Audio Open 1.0: 0.3 to 500). Without ``init`` the start is noise x sigma(t_0).
  logsnr           rectified flow: log((1 - t) / t) evenly spaced from -6 (or t_start's) to 2, with
                   the first time t_start and the last 0 (stable-audio-tools' ``sample_rf``).

Heun's last step into t = 0 is an Euler step (Karras et al. 2022, Algorithm 1): a network is
barely trained at t = 0 (logit-normal times never reach it, min-SNR weighting gives it no
weight), so its output there is not used.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from latentaudio.dit.diffusion import DiffusionObjective

ModelFn = Callable[[Tensor, Tensor], Tensor]

VALID_SAMPLERS: dict[str, tuple[str, ...]] = {
    "v": ("ddim", "euler", "heun", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde"),
    "rectified_flow": ("euler", "heun", "pingpong"),
}
# sampling settings a bundle may store beside sampler, steps and cfg_scale (imported Stable Audio
# Open models store theirs): ``sample``'s keyword arguments of the same names
SCHEDULE_KEYS = ("schedule", "sigma_min", "sigma_max", "rho")
SCHEDULES: dict[str, tuple[str, ...]] = {
    "v": ("linear", "polyexponential"),
    "rectified_flow": ("linear", "logsnr"),
}
DEFAULT_SAMPLERS: dict[str, str] = {"v": "dpmpp_2m", "rectified_flow": "heun"}


def check_sampler(objective: DiffusionObjective, sampler: str) -> None:
    valid = VALID_SAMPLERS.get(objective.name, ())
    if sampler not in valid:
        raise ValueError(
            f"sampler {sampler!r} does not work with the {objective.name!r} objective; valid: {', '.join(valid)}"
        )


def default_sampler(objective_name: str) -> str:
    return DEFAULT_SAMPLERS[objective_name]


def resolve_sampling(objective_name: str, sampling: dict | None) -> dict:
    """``sampling`` (the ``sampling.*`` config keys) with ``sampler`` null or absent replaced by the
    objective's default; a sampler that does not fit the objective is refused, naming both keys."""
    if objective_name not in VALID_SAMPLERS:
        raise ValueError(f"objective.name={objective_name}: choose one of {', '.join(VALID_SAMPLERS)}")
    resolved = dict(sampling or {})
    sampler = resolved.get("sampler") or default_sampler(objective_name)
    valid = VALID_SAMPLERS[objective_name]
    if sampler not in valid:
        raise ValueError(
            f"sampling.sampler={sampler} does not work with objective.name={objective_name}: use one of "
            f"{', '.join(valid)}, or sampling.sampler=null for the objective's default "
            f"({default_sampler(objective_name)})"
        )
    resolved["sampler"] = sampler
    return resolved


def classifier_free_guidance(
    cond_out: Tensor, uncond_out: Tensor, scale: float, rescale: float = 0.0
) -> Tensor:
    """uncond + scale (cond - uncond), optionally rescaled towards the conditional output's std.

    ``rescale`` in [0, 1] blends in the guided output rescaled to the per-item standard deviation
    of ``cond_out`` (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are
    Flawed", eq. 15-16), which counters the over-saturation high scales cause.
    """
    guided = uncond_out + scale * (cond_out - uncond_out)
    if rescale <= 0.0:
        return guided
    dims = tuple(range(1, cond_out.dim()))
    std_cond = cond_out.std(dim=dims, keepdim=True)
    std_guided = guided.std(dim=dims, keepdim=True).clamp(min=1e-8)
    return rescale * guided * (std_cond / std_guided) + (1.0 - rescale) * guided


def replace_known(
    objective: DiffusionObjective,
    x: Tensor,
    known: Tensor,
    keep: Tensor,
    t: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """RePaint-style replacement: the state ``x`` at time ``t`` with ``known`` clean latents put back.

    ``keep`` (B or 1, 1, T) in [0, 1]: 1 replaces ``x`` by ``known`` noised to ``t`` with fresh
    noise, 0 leaves ``x``, and a fraction w crossfades the two. Both sides carry independent
    noise of std sigma(t), so the crossfade alone would carry sigma sqrt(w^2 + (1 - w)^2), less
    than the sampler expects at ``t``; fresh noise of std sigma sqrt(2 w (1 - w)) tops it up, so
    the state is the crossfade of the clean parts at the right noise level. Where ``keep`` is
    hard (0 or 1) nothing is added and no extra noise is drawn.
    """
    t_batch = torch.full((x.shape[0],), t)
    x = keep * objective.noisy(known, _randn_like(x, generator), t_batch) + (1.0 - keep) * x
    crossfade = keep * (1.0 - keep)
    if bool((crossfade > 0).any()):
        sigma = float(objective.sigma(torch.tensor(t, dtype=torch.float64)))
        x = x + sigma * torch.sqrt(2.0 * crossfade) * _randn_like(x, generator)
    return x


def _randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard noise like ``x``, drawn where the generator lives (a CPU generator cannot draw on
    a GPU) and moved to ``x``'s device, so a seed gives the same numbers on every device."""
    device = x.device if generator is None else generator.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def _angle(t: float) -> float:
    return 0.5 * math.pi * t


@torch.no_grad()
def sample(
    model_fn: ModelFn,
    noise: Tensor,
    objective: DiffusionObjective,
    sampler: str,
    steps: int,
    t_start: float = 1.0,
    t_end: float = 0.0,
    init: Tensor | None = None,
    generator: torch.Generator | None = None,
    on_step: Callable[[Tensor, float], Tensor] | None = None,
    progress: Callable[[int], None] | None = None,
    schedule: str = "linear",
    sigma_min: float = 0.3,
    sigma_max: float = 500.0,
    rho: float = 1.0,
) -> Tensor:
    """Run ``sampler`` for ``steps`` steps from t_start to t_end and return the final state.

    Args:
        model_fn: ``model_fn(x_t, t) -> output`` in the objective's parameterisation, t (B,)
            float32 (wrap the DiT and its conditions, and CFG, in this closure).
        noise: (B, C, T) standard Gaussian noise. Without ``init`` it is the starting state
            itself (pure noise is right for t_start = 1).
        objective: the objective the model was trained with.
        sampler: a name from ``VALID_SAMPLERS[objective.name]``.
        steps: number of steps (heun makes two model calls per step).
        t_start: starting time in (0, 1]; below 1 for audio-to-audio variation.
        t_end: final time in [0, t_start); at 0 (default) the result is the sample x0.
        init: optional (B, C, T) clean latents; the start is then
            ``objective.noisy(init, noise, t_start)`` (audio-to-audio, continuation).
        generator: source of the fresh noise of SDE samplers; a fixed seed gives identical output.
        on_step: ``on_step(x, t_next) -> x`` applied after every step (RePaint-style
            inpainting replaces the known region with the init noised to t_next).
        progress: called with the step index (0-based) after every step.
        schedule: the times the steps visit (see the module's docstring); ``sigma_min``,
            ``sigma_max`` and ``rho`` shape the polyexponential one.
    """
    check_sampler(objective, sampler)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not 0.0 <= t_end < t_start <= 1.0:
        raise ValueError(f"need 0 <= t_end < t_start <= 1, got t_start={t_start}, t_end={t_end}")
    batch = noise.shape[0]
    times = time_grid(objective, schedule, steps, t_start, t_end, sigma_min, sigma_max, rho)
    if init is not None:
        x = objective.noisy(init, noise, torch.full((batch,), times[0]))
    elif schedule == "polyexponential":  # k-diffusion's start: noise x sigma_max, i.e. x_t = sin(phi_0) noise
        x = float(objective.sigma(torch.tensor(times[0], dtype=torch.float64))) * noise
    else:  # the state at t_start itself (pure noise at t_start = 1)
        x = noise

    def model_x0(x_t: Tensor, t: float) -> tuple[Tensor, Tensor]:
        t_batch = torch.full((batch,), t, dtype=torch.float32, device=x_t.device)
        out = model_fn(x_t, t_batch)
        return out, objective.denoised(x_t, out, t_batch)

    def velocity(x_t: Tensor, t: float) -> Tensor:
        # dx/dphi for the v objective (the model output itself), dx/dt for rectified flow.
        return model_fn(x_t, torch.full((batch,), t, dtype=torch.float32, device=x_t.device))

    def time_scale(dt: float) -> float:
        return _angle(dt) if objective.name == "v" else dt

    old_denoised: Tensor | None = None
    h_last: float | None = None
    history: list = [None, None, None, None]  # dpmpp_3m_sde: the last two predictions and steps
    for i in range(steps):
        t, t_next = times[i], times[i + 1]
        if sampler == "euler":
            x = x + time_scale(t_next - t) * velocity(x, t)
        elif sampler == "heun":
            d = velocity(x, t)
            x_pred = x + time_scale(t_next - t) * d
            x = x_pred if t_next == 0.0 else x + time_scale(t_next - t) * 0.5 * (d + velocity(x_pred, t_next))
        elif sampler == "ddim":
            out, x0 = model_x0(x, t)
            eps = objective.eps_from(x, out, torch.full((batch,), t))
            x = math.cos(_angle(t_next)) * x0 + math.sin(_angle(t_next)) * eps
        elif sampler == "pingpong":
            _, x0 = model_x0(x, t)
            x = (
                x0
                if t_next == 0.0
                else objective.noisy(x0, _randn_like(x, generator), torch.full((batch,), t_next))
            )
        elif sampler == "dpmpp_3m_sde":
            x = _dpmpp_3m_sde_step(model_x0, x, t, t_next, history, generator)
        else:
            x, old_denoised, h_last = _dpmpp_step(
                sampler, model_x0, x, t, t_next, old_denoised, h_last, generator
            )
        if on_step is not None:
            x = on_step(x, t_next)
        if progress is not None:
            progress(i)
    return x


def time_grid(
    objective: DiffusionObjective,
    schedule: str,
    steps: int,
    t_start: float = 1.0,
    t_end: float = 0.0,
    sigma_min: float = 0.3,
    sigma_max: float = 500.0,
    rho: float = 1.0,
) -> list[float]:
    """The ``steps + 1`` times a sampler visits, from the start to t_end (module docstring)."""
    valid = SCHEDULES.get(objective.name, ())
    if schedule not in valid:
        raise ValueError(
            f"schedule {schedule!r} does not work with the {objective.name!r} objective; valid: {', '.join(valid)}"
        )
    if schedule == "linear":
        return [t_start + (t_end - t_start) * i / steps for i in range(steps + 1)]
    if t_end != 0.0:
        raise ValueError(f"the {schedule} schedule ends at t = 0, not t_end={t_end}")
    if schedule == "polyexponential":
        if not 0.0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        if t_start < 1.0:  # a variation starts lower: no sigma above t_start's
            sigma_max = min(sigma_max, math.tan(_angle(t_start)))
        ramp = [1.0 - i / (steps - 1) for i in range(steps)] if steps > 1 else [1.0]
        log_min, log_max = math.log(sigma_min), math.log(sigma_max)
        sigmas = [math.exp(r**rho * (log_max - log_min) + log_min) for r in ramp]
        return [math.atan(sigma) * 2.0 / math.pi for sigma in sigmas] + [0.0]
    # logsnr, as stable-audio-tools' sample_rf
    logsnr_max = -6.0 if t_start >= 1.0 else math.log((1.0 - t_start) / t_start + 1e-6)
    logsnr = [logsnr_max + (2.0 - logsnr_max) * i / steps for i in range(steps + 1)]
    times = [1.0 / (1.0 + math.exp(value)) for value in logsnr]  # sigmoid(-logsnr)
    times[0], times[-1] = t_start, 0.0
    return times


def _dpmpp_3m_sde_step(model_x0, x, t, t_next, history, generator):
    """One DPM-Solver++(3M) SDE step (eta = 1) of the v objective's VP process, in log-SNR: k-diffusion's
    ``sample_dpmpp_3m_sde`` on x_t = alpha x_k. ``history`` [denoised_1, denoised_2, h_1, h_2] is
    updated in place."""
    _, denoised = model_x0(x, t)
    alpha, sigma = math.cos(_angle(t)), math.sin(_angle(t))
    alpha_next, sigma_next = math.cos(_angle(t_next)), math.sin(_angle(t_next))
    denoised_1, denoised_2, h_1, h_2 = history
    if sigma_next <= 0.0:
        history[:] = [denoised, denoised_1, h_1, h_2]
        return denoised
    exp_neg_h = (alpha * sigma_next) / (alpha_next * sigma)
    h = -math.log(max(exp_neg_h, 1e-300))
    h_eta = 2.0 * h
    phi_1 = -math.expm1(-h_eta)
    x = (sigma_next / sigma) * exp_neg_h * x + alpha_next * phi_1 * denoised
    phi_2 = math.expm1(-h_eta) / h_eta + 1.0
    if h_2 is not None:
        r0, r1 = h_1 / h, h_2 / h
        d1_0 = (denoised - denoised_1) / r0
        d1_1 = (denoised_1 - denoised_2) / r1
        d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
        d2 = (d1_0 - d1_1) / (r0 + r1)
        phi_3 = phi_2 / h_eta - 0.5
        x = x + alpha_next * (phi_2 * d1 - phi_3 * d2)
    elif h_1 is not None:
        x = x + alpha_next * phi_2 * (denoised - denoised_1) / (h_1 / h)
    x = x + sigma_next * math.sqrt(-math.expm1(-2.0 * h)) * _randn_like(x, generator)
    history[:] = [denoised, denoised_1, h, h_1]
    return x


def _dpmpp_step(sampler, model_x0, x, t, t_next, old_denoised, h_last, generator):
    """One DPM-Solver++ (2M or 2M SDE) step of the v objective's VP process, in log-SNR."""
    _, denoised = model_x0(x, t)
    alpha, sigma = math.cos(_angle(t)), math.sin(_angle(t))
    alpha_next, sigma_next = math.cos(_angle(t_next)), math.sin(_angle(t_next))
    if sigma_next <= 0.0:
        return denoised, denoised, None  # the last step lands on the prediction itself
    # exp(-h) with h = lambda_next - lambda, lambda = log(alpha / sigma); finite even at t = 1.
    exp_neg_h = (alpha * sigma_next) / (alpha_next * sigma)
    h = -math.log(max(exp_neg_h, 1e-300))
    d = denoised
    if sampler == "dpmpp_2m":
        if old_denoised is not None and h_last is not None:
            r = h_last / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x = (sigma_next / sigma) * x + alpha_next * (1.0 - exp_neg_h) * d
    else:  # dpmpp_2m_sde, eta = 1
        exp_neg_2h = exp_neg_h**2
        x = (sigma_next / sigma) * exp_neg_h * x + alpha_next * (1.0 - exp_neg_2h) * denoised
        if old_denoised is not None and h_last is not None:
            r = h_last / h
            x = x + alpha_next * 0.5 * (1.0 - exp_neg_2h) * (1 / r) * (denoised - old_denoised)
        x = x + sigma_next * math.sqrt(1.0 - exp_neg_2h) * _randn_like(x, generator)
    return x, denoised, h
