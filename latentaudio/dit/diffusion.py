"""Diffusion objectives: how clean latents are noised, what the network predicts, the loss.

Both objectives write the noisy latent as ``x_t = alpha(t) x0 + sigma(t) eps`` with the time
t in [0, 1] (0: data, 1: noise) and share one interface, so the training step and the
samplers never branch on the objective's name:

- ``VObjective``: cosine schedule alpha = cos(pi t / 2), sigma = sin(pi t / 2); the network
  predicts v = alpha eps - sigma x0.
- ``RectifiedFlow``: alpha = 1 - t, sigma = t; the network predicts the velocity eps - x0
  (from data towards noise), so dx_t/dt is the model output.

Every conversion (x0, eps from a model output) is division-free, so t = 0 and t = 1 are safe.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _expand(values: Tensor, like: Tensor) -> Tensor:
    """(B,) per-item values broadcast against a (B, ...) tensor."""
    return values.to(like.device, like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


class DiffusionObjective:
    """Shared interface; subclasses define alpha, sigma, target and the conversions.

    Args:
        time_sampling: "uniform" or "logit_normal" (t = sigmoid(N(logit_mean, logit_std^2)),
            which spends more training on middle noise levels).
        logit_mean, logit_std: the logit-normal's parameters.
        t_min, t_max: sampled times are clamped to [t_min, t_max].
    """

    name: str = ""

    def __init__(
        self,
        time_sampling: str = "uniform",
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
        t_min: float = 0.0,
        t_max: float = 1.0,
    ):
        if time_sampling not in ("uniform", "logit_normal"):
            raise ValueError(f"time_sampling must be 'uniform' or 'logit_normal', got {time_sampling!r}")
        if not 0.0 <= t_min < t_max <= 1.0:
            raise ValueError(f"need 0 <= t_min < t_max <= 1, got {t_min}, {t_max}")
        self.time_sampling = time_sampling
        self.logit_mean = logit_mean
        self.logit_std = logit_std
        self.t_min = t_min
        self.t_max = t_max

    def __repr__(self) -> str:
        return f"{type(self).__name__}(time_sampling={self.time_sampling!r}, t_min={self.t_min}, t_max={self.t_max})"

    # ----------------------------------------------------------------- schedule
    def alpha(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def sigma(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def snr(self, t: Tensor) -> Tensor:
        """alpha^2 / sigma^2 (inf at t = 0)."""
        return self.alpha(t) ** 2 / self.sigma(t) ** 2

    def sample_time(
        self, batch_size: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
    ) -> Tensor:
        """Training times (B,) in [t_min, t_max], float32."""
        if self.time_sampling == "uniform":
            u = torch.rand(batch_size, generator=generator, device=device)
            t = self.t_min + (self.t_max - self.t_min) * u
        else:
            z = torch.randn(batch_size, generator=generator, device=device)
            t = torch.sigmoid(self.logit_mean + self.logit_std * z)
        return t.clamp(self.t_min, self.t_max)

    # ------------------------------------------------------------ noising, target
    def noisy(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """x_t = alpha(t) x0 + sigma(t) noise; t (B,)."""
        return _expand(self.alpha(t), x0) * x0 + _expand(self.sigma(t), x0) * noise

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        raise NotImplementedError

    def denoised(self, x_t: Tensor, model_out: Tensor, t: Tensor) -> Tensor:
        """The x0 prediction from a model output."""
        raise NotImplementedError

    def eps_from(self, x_t: Tensor, model_out: Tensor, t: Tensor) -> Tensor:
        """The noise prediction from a model output."""
        raise NotImplementedError

    def x0_sensitivity(self, t: Tensor) -> Tensor:
        """|d x0_hat / d model_out|: an error e in the output is an error this times e in x0."""
        raise NotImplementedError

    def output_for(self, x_t: Tensor, x0: Tensor, t: Tensor) -> Tensor:
        """The model output that denoises ``x_t`` at ``t`` to ``x0`` (the inverse of ``denoised``)."""
        raise NotImplementedError

    # ------------------------------------------------ deterministic steps (DDIM)
    def step(self, x_t: Tensor, x0: Tensor, t: Tensor, u: Tensor) -> Tensor:
        """The state at time ``u`` on the path through ``x0`` and the noise ``x_t`` implies at ``t``:
        DDIM for the v objective, an Euler step for rectified flow (the same update)."""
        a_t, s_t = _expand(self.alpha(t), x_t), _expand(self.sigma(t), x_t)
        eps = (x_t - a_t * x0) / s_t
        return _expand(self.alpha(u), x_t) * x0 + _expand(self.sigma(u), x_t) * eps

    def x0_between(self, x_t: Tensor, x_u: Tensor, t: Tensor, u: Tensor) -> Tensor:
        """The x0 whose :meth:`step` from ``x_t`` at ``t`` lands on ``x_u`` at ``u`` (< t)."""
        a_t, s_t = _expand(self.alpha(t), x_t), _expand(self.sigma(t), x_t)
        a_u, s_u = _expand(self.alpha(u), x_t), _expand(self.sigma(u), x_t)
        return (x_u - (s_u / s_t) * x_t) / (a_u - s_u * a_t / s_t)

    # ------------------------------------------------------------------- loss
    def loss(
        self,
        model_out: Tensor,
        target: Tensor,
        t: Tensor,
        weighting: str = "uniform",
        min_snr_gamma: float = 5.0,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Weighted mean-squared error, computed in float32.

        Args:
            model_out, target: (B, C, T).
            t: (B,) the times the inputs were noised at.
            weighting: "uniform" (plain MSE on the model output) or "min_snr" (Min-SNR-gamma,
                Hang et al. 2023: the x0 error weighted by min(SNR, gamma), expressed for
                this objective's output).
            mask: optional (B, T) frames to count (1/True) or ignore (0/False), for padding.

        Returns:
            (loss, per_item): the scalar to optimise and its (B,) per-item values (detached),
            for breaking the loss down by noise level.
        """
        err = (model_out.float() - target.float()) ** 2  # (B, C, T)
        if mask is None:
            per_item = err.flatten(1).mean(dim=1)  # (B,)
        else:
            m = mask.to(err.dtype)[:, None, :]  # (B, 1, T)
            per_item = (err * m).flatten(1).sum(dim=1) / (m.flatten(1).sum(dim=1) * err.shape[1]).clamp(
                min=1.0
            )
        if weighting == "min_snr":
            t = t.float().to(per_item.device)
            per_item = per_item * self.snr(t).clamp(max=min_snr_gamma) * self.x0_sensitivity(t) ** 2
        elif weighting != "uniform":
            raise ValueError(f"weighting must be 'uniform' or 'min_snr', got {weighting!r}")
        return per_item.mean(), per_item.detach()


class VObjective(DiffusionObjective):
    """v-prediction with the cosine schedule alpha = cos(pi t / 2), sigma = sin(pi t / 2)."""

    name = "v"

    def alpha(self, t: Tensor) -> Tensor:
        return torch.cos(0.5 * math.pi * t)

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sin(0.5 * math.pi * t)

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        return _expand(self.alpha(t), x0) * noise - _expand(self.sigma(t), x0) * x0

    def denoised(self, x_t: Tensor, model_out: Tensor, t: Tensor) -> Tensor:
        return _expand(self.alpha(t), x_t) * x_t - _expand(self.sigma(t), x_t) * model_out

    def eps_from(self, x_t: Tensor, model_out: Tensor, t: Tensor) -> Tensor:
        return _expand(self.sigma(t), x_t) * x_t + _expand(self.alpha(t), x_t) * model_out

    def x0_sensitivity(self, t: Tensor) -> Tensor:
        return self.sigma(t)

    def output_for(self, x_t: Tensor, x0: Tensor, t: Tensor) -> Tensor:
        return (_expand(self.alpha(t), x_t) * x_t - x0) / _expand(self.sigma(t), x_t)


class RectifiedFlow(DiffusionObjective):
    """Rectified flow: x_t = (1 - t) x0 + t eps, the network predicts eps - x0."""

    name = "rectified_flow"

    def alpha(self, t: Tensor) -> Tensor:
        return 1.0 - t

    def sigma(self, t: Tensor) -> Tensor:
        return t

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        return noise - x0

    def denoised(self, x_t: Tensor, model_out: Tensor, t: Tensor) -> Tensor:
        return x_t - _expand(t, x_t) * model_out

    def eps_from(self, x_t: Tensor, model_out: Tensor, t: Tensor) -> Tensor:
        return x_t + _expand(1.0 - t, x_t) * model_out

    def x0_sensitivity(self, t: Tensor) -> Tensor:
        return t

    def output_for(self, x_t: Tensor, x0: Tensor, t: Tensor) -> Tensor:
        return (x_t - x0) / _expand(t, x_t)


OBJECTIVES: dict[str, type[DiffusionObjective]] = {"v": VObjective, "rectified_flow": RectifiedFlow}


def objective_args(objective: dict) -> dict:
    """The objective's constructor arguments from its config (``weighting`` belongs to the loss)."""
    return {k: v for k, v in objective.items() if k != "weighting"}


def make_objective(name: str, **kwargs) -> DiffusionObjective:
    """``make_objective("v" | "rectified_flow", time_sampling=..., logit_mean=..., ...)``."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name](**kwargs)
