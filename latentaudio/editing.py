"""The editing modes of the pipeline: vary, inpaint, extend (continue) and enhance.

``Pipeline`` inherits these methods; they use its encoder, sampler and decoder.
"""

from __future__ import annotations

import math

import torch

from latentaudio.dit.aligned import aligned_input


class EditingModes:
    """Audio in, audio out: every mode takes ``(C, T)`` or ``(B, C, T)`` audio at any rate."""

    def _input(self, audio: torch.Tensor, sample_rate: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(prepared audio (B * n, C, S) at the model's rate, its normalised latents)."""
        prepared = self.autoencoder.prepare(audio, sample_rate)
        if prepared.shape[-1] < self.autoencoder.hop:
            raise ValueError(
                f"the input has {prepared.shape[-1]} samples at {self.sample_rate} Hz; "
                f"it needs at least one latent frame ({self.autoencoder.hop} samples)"
            )
        prepared = prepared.repeat_interleave(n, dim=0)
        return prepared, self.encode(prepared, self.sample_rate)

    def vary(
        self,
        audio: torch.Tensor,
        sample_rate: int,
        strength: float = 0.5,
        n: int = 1,
        prompt: str | None = None,
        label: str | int | None = None,
        seed: int = 0,
        progress: bool = False,
        **settings,
    ) -> torch.Tensor:
        """Audio to audio: the input's latents noised to t = ``strength`` (0: unchanged, 1: new)
        and sampled back; (B * n, channels, samples) at the model's rate, the input's duration.

        ``settings``: sampler, steps (spread over [strength, 0]), cfg_scale, cfg_rescale.
        """
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength={strength}: it must be in (0, 1] (0 keeps the input, 1 ignores it)")
        prepared, latents = self._input(audio, sample_rate, n)
        seconds = prepared.shape[-1] / self.sample_rate
        x0 = self.sample_windows(
            latents.shape[-1],
            latents.shape[0],
            seconds,
            prompt,
            label,
            init=latents,
            t_start=strength,
            seed=seed,
            progress=progress,
            **settings,
        )
        return self.decode(x0, length=prepared.shape[-1])

    def inpaint(
        self,
        audio: torch.Tensor,
        sample_rate: int,
        ranges: list[tuple[float, float]],
        n: int = 1,
        prompt: str | None = None,
        label: str | int | None = None,
        seed: int = 0,
        progress: bool = False,
        **settings,
    ) -> torch.Tensor:
        """Regenerate the time ``ranges`` [(start_s, end_s), ...] of a clip and keep the rest.

        Every latent frame that touches a range is regenerated; the others come back equal to
        the latents of the input (so the kept audio is the VAE reconstruction, up to the
        decoder's receptive field at the boundaries).
        """
        prepared, latents = self._input(audio, sample_rate, n)
        seconds = prepared.shape[-1] / self.sample_rate
        keep = self.keep_mask(ranges, latents.shape[-1], seconds)
        x0 = self.sample_windows(
            latents.shape[-1],
            latents.shape[0],
            seconds,
            prompt,
            label,
            known=latents,
            keep=keep,
            seed=seed,
            progress=progress,
            **settings,
        )
        return self.decode(x0, length=prepared.shape[-1])

    def keep_mask(self, ranges: list[tuple[float, float]], frames: int, seconds: float) -> torch.Tensor:
        """(1, 1, frames): 0 on every frame that overlaps one of ``ranges`` (seconds), 1 elsewhere."""
        if not ranges:
            raise ValueError("give at least one (start, end) range to inpaint")
        keep = torch.ones(1, 1, frames, device=self.device)
        frame_seconds = self.autoencoder.hop / self.sample_rate
        for start, end in ranges:
            if not 0.0 <= start < end <= seconds + 1e-9:
                raise ValueError(
                    f"range ({start}, {end}) s: need 0 <= start < end <= {seconds:.3f} (the clip's length)"
                )
            first = math.floor(start / frame_seconds)
            last = min(frames, math.ceil(end / frame_seconds - 1e-9))
            keep[..., first : max(last, first + 1)] = 0.0
        return keep

    def extend(
        self,
        audio: torch.Tensor,
        sample_rate: int,
        seconds: float,
        n: int = 1,
        prompt: str | None = None,
        label: str | int | None = None,
        seed: int = 0,
        progress: bool = False,
        **settings,
    ) -> torch.Tensor:
        """Continue a clip by ``seconds``: its latents are the known prefix, new frames follow.

        The clip is first cut to a whole number of latent frames (under one hop less), so the
        result starts with the reconstruction of that cut clip and runs ``seconds`` longer.
        """
        if seconds <= 0:
            raise ValueError(f"seconds={seconds}: the length to add must be positive")
        prepared, latents = self._input(audio, sample_rate, n)
        hop = self.autoencoder.hop
        whole = prepared.shape[-1] // hop
        prepared, latents = prepared[..., : whole * hop], latents[..., :whole]
        added = self.frames_for(seconds)
        frames = whole + added
        known = torch.cat([latents, latents.new_zeros(*latents.shape[:2], added)], dim=-1)
        keep = torch.cat([torch.ones(1, 1, whole), torch.zeros(1, 1, added)], dim=-1).to(self.device)
        length = whole * hop + round(seconds * self.sample_rate)
        x0 = self.sample_windows(
            frames,
            known.shape[0],
            length / self.sample_rate,
            prompt,
            label,
            known=known,
            keep=keep,
            seed=seed,
            progress=progress,
            **settings,
        )
        return self.decode(x0, length=length)

    continue_clip = extend

    def enhance(
        self,
        audio: torch.Tensor,
        sample_rate: int,
        strength: float = 0.3,
        n: int = 1,
        prompt: str | None = None,
        label: str | int | None = None,
        seed: int = 0,
        progress: bool = False,
        **settings,
    ) -> torch.Tensor:
        """Clean up a degraded clip (noise, clipping).

        A DiT trained with ``aligned.task=enhance`` generates from noise with the degraded
        clip's latents as its aligned input (``strength`` is then unused). Any other model
        falls back to SDEdit: the clip is noised to t = ``strength`` and denoised, which keeps
        its structure and pulls the details back towards what the model learned.
        """
        if self.aligned_task != "enhance":
            return self.vary(audio, sample_rate, strength, n, prompt, label, seed, progress, **settings)
        prepared, latents = self._input(audio, sample_rate, n)
        known = aligned_input(latents, torch.ones(1, 1, latents.shape[-1], device=self.device))
        x0 = self.sample_windows(
            latents.shape[-1],
            latents.shape[0],
            prepared.shape[-1] / self.sample_rate,
            prompt,
            label,
            aligned_cond=known,
            seed=seed,
            progress=progress,
            **settings,
        )
        return self.decode(x0, length=prepared.shape[-1])
