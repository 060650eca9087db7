"""Metric computations over clips, files and sets, used by the evaluate app (and `make reconstruct`) and
usable from the validation loops of both stages (pure torch: no Hydra, no Lightning).

Reconstruction: :func:`reconstruction_metrics` on a batch, :func:`reconstruct_files` over files.
Generation: :func:`generation_metrics` compares a set of real clips with a set of generated ones
(Frechet and kernel distances on mel-statistics and MFCC features, optionally on a local
embedding model); :func:`generate_like` makes the generated set with a pipeline and times it.

Embedding checkpoints (``embedding=<path>``) are TorchScript files (``torch.jit.save``) whose
``forward`` takes mono audio ``(B, T)`` float32 in [-1, 1] and returns one embedding per clip
``(B, D)`` or per frame ``(B, frames, D)`` (averaged over frames). The audio is resampled to the
module's integer attribute ``sample_rate`` when it has one, else to ``embedding_rate``. Export
VGGish, CLAP or any network this way once and point ``embedding=`` at the file.

Loading a TorchScript file runs the code inside it (``torch.jit.load`` is code execution, as
unpickling is), so :class:`EmbeddingModel` refuses a file unless the caller says it trusts it
(``trusted=True``; ``trust_embedding=true`` in the evaluate app).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from latentaudio import metrics
from latentaudio.audio import AudioDecodeError, read_audio, resample, write_audio

RECONSTRUCTION_METRICS = ("mrstft", "mel", "sisdr")
FEATURE_SETS = ("mel_stats", "mfcc")
# a frame counts as audible when its RMS is within this many dB of the clip's loudest frame
AUDIBLE_DB = 40.0


# --------------------------------------------------------------------------------------
# Reconstruction
# --------------------------------------------------------------------------------------


def reconstruction_metrics(
    decoded: torch.Tensor, reference: torch.Tensor, sample_rate: int
) -> dict[str, torch.Tensor]:
    """Per-item ``(B,)`` MR-STFT distance, mel distance and SI-SDR of ``decoded`` against ``reference``.

    The same numbers the evaluate app reports per file; validation loops take ``.mean()``.
    """
    return {
        "mrstft": metrics.mrstft_distance(decoded, reference, sample_rate),
        "mel": metrics.mel_distance(decoded, reference, sample_rate),
        "sisdr": metrics.si_sdr(decoded, reference),
    }


def mean_metrics(per_file: dict[str, dict[str, float]], names: Iterable[str]) -> dict[str, float]:
    return {name: sum(r[name] for r in per_file.values()) / len(per_file) for name in names}


def metrics_by_group(
    per_file: dict[str, dict[str, float]], groups: dict[str, str], names: Iterable[str]
) -> dict[str, dict[str, float]]:
    """Mean metrics per group (a label from the metadata), each with its file count and its
    worst SI-SDR, so a group the overall mean hides (bells among drums) shows. Files without
    a group are left out; groups in sorted order."""
    members: dict[str, dict[str, dict[str, float]]] = {}
    for path, values in per_file.items():
        if groups.get(path):
            members.setdefault(groups[path], {})[path] = values
    table = {}
    for group in sorted(members):
        table[group] = mean_metrics(members[group], names)
        table[group]["files"] = len(members[group])
        table[group]["worst_sisdr"] = min(v["sisdr"] for v in members[group].values())
    return table


def extremes(per_file: dict[str, dict[str, float]], count: int = 3, by: str = "sisdr") -> dict[str, list]:
    """The ``count`` worst and best files by one metric (higher is better): [[path, value], ...]."""
    ranked = sorted(per_file.items(), key=lambda item: item[1][by])
    return {
        "by": by,
        "worst": [[path, values[by]] for path, values in ranked[:count]],
        "best": [[path, values[by]] for path, values in ranked[::-1][:count]],
    }


@dataclass
class FileReconstruction:
    path: str
    reference: torch.Tensor  # (C, T) at the VAE's rate
    decoded: torch.Tensor  # (C, T)
    metrics: dict[str, float]


def reconstruct_files(
    autoencoder, root: Path, paths: Sequence[str], write_to: Path | None = None, warn=None
) -> Iterable[FileReconstruction]:
    """Encode and decode each file with ``autoencoder`` (an :class:`~latentaudio.autoencoder.Autoencoder`).

    Yields one :class:`FileReconstruction` per decodable file; undecodable files are passed to
    ``warn(path, reason)`` and skipped. With ``write_to`` the reconstruction is written there
    as ``<relative path>.wav``.
    """
    for relative in paths:
        try:
            audio, rate = read_audio(
                Path(root) / relative, sample_rate=autoencoder.sample_rate, channels=autoencoder.channels
            )
        except AudioDecodeError as error:
            if warn is not None:
                warn(relative, error.reason)
            continue
        reference = audio.unsqueeze(0)  # (1, C, T)
        with torch.inference_mode():
            decoded = autoencoder.reconstruct(reference, rate)  # (1, C, T)
            values = {k: float(v.mean()) for k, v in reconstruction_metrics(decoded, reference, rate).items()}
        if write_to is not None:
            write_audio((Path(write_to) / relative).with_suffix(".wav"), decoded[0], rate)
        yield FileReconstruction(relative, reference[0], decoded[0], values)


def latent_rate(autoencoder) -> float:
    """Latent values per second of audio: ``latent_dim * sample_rate / hop``."""
    return autoencoder.latent_dim * autoencoder.sample_rate / autoencoder.hop


# --------------------------------------------------------------------------------------
# Embedding models (local TorchScript checkpoints)
# --------------------------------------------------------------------------------------


class UntrustedEmbeddingError(ValueError):
    """An embedding model the caller has not declared trusted (loading it would run its code)."""


class EmbeddingModel:
    """A local TorchScript embedding network; see the module docstring for the format.

    ``trusted`` must be True: loading the file runs its code with your permissions.
    """

    def __init__(
        self, path: str | Path, sample_rate: int = 16000, device: str = "cpu", trusted: bool = False
    ):
        path = Path(path)
        if not trusted:
            raise UntrustedEmbeddingError(
                f"embedding={path}: loading a TorchScript file runs the code inside it (torch.jit.load is "
                "code execution). Use only a file you made or trust, and say so: trust_embedding=true in "
                "the evaluate app, EmbeddingModel(..., trusted=True) in Python"
            )
        if not path.is_file():
            raise FileNotFoundError(f"embedding={path}: no such file (a TorchScript file is expected)")
        try:
            self.module = torch.jit.load(str(path), map_location=device).eval()
        except RuntimeError as error:
            raise ValueError(f"embedding={path} is not a TorchScript file: {error}") from error
        self.path = path
        self.device = device
        self.sample_rate = int(getattr(self.module, "sample_rate", sample_rate))

    @torch.inference_mode()
    def __call__(self, clips: Sequence[torch.Tensor], sample_rate: int) -> torch.Tensor:
        """Clips ``(C, T)`` of any lengths to embeddings ``(N, D)`` (float64)."""
        features = []
        for clip in clips:
            mono = resample(clip.float().mean(dim=0), int(sample_rate), self.sample_rate)
            out = self.module(mono[None].to(self.device))
            if out.dim() == 3:
                out = out.mean(dim=1)  # (1, frames, D) -> (1, D)
            if out.dim() != 2 or out.shape[0] != 1:
                raise ValueError(
                    f"embedding model {self.path} returned shape {tuple(out.shape)}; expected (B, D) or (B, frames, D)"
                )
            features.append(out[0].double().cpu())
        return torch.stack(features)


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


def audible_seconds(clip: torch.Tensor, sample_rate: int, threshold_db: float = AUDIBLE_DB) -> float:
    """End time of the last 10 ms frame within ``threshold_db`` of the loudest one (0 for silence)."""
    frame = max(1, sample_rate // 100)
    mono = clip.float().mean(dim=0)
    frames = mono[: mono.shape[-1] // frame * frame].reshape(-1, frame)
    if frames.shape[0] == 0:
        return 0.0
    rms = frames.pow(2).mean(dim=1).sqrt()
    peak = float(rms.max())
    if peak <= 0:
        return 0.0
    audible = torch.nonzero(rms >= peak * 10 ** (-threshold_db / 20)).flatten()
    return float(audible[-1] + 1) * frame / sample_rate


@dataclass
class GeneratedSet:
    clips: list[torch.Tensor]  # each (C, T) at sample_rate
    asked_seconds: list[float]
    sample_rate: int
    wall_seconds: float

    @property
    def realtime_factor(self) -> float:
        """Audio seconds produced per wall-clock second (above 1: faster than real time)."""
        return sum(c.shape[-1] for c in self.clips) / self.sample_rate / max(self.wall_seconds, 1e-9)


def generate_like(
    pipeline,
    seconds: Sequence[float],
    steps: int | None = None,
    sampler: str | None = None,
    cfg_scale: float | None = None,
    seed: int = 0,
    batch_size: int = 8,
) -> GeneratedSet:
    """One clip per entry of ``seconds`` (clips of equal length go in one batch), timed end to end."""
    order = sorted(range(len(seconds)), key=lambda i: seconds[i])
    clips: list[torch.Tensor | None] = [None] * len(seconds)
    start = time.perf_counter()
    group: list[int] = []
    for position, index in enumerate(order):
        group.append(index)
        last = position == len(order) - 1
        if last or len(group) == batch_size or seconds[order[position + 1]] != seconds[index]:
            audio = pipeline.generate(
                seconds=seconds[index],
                n=len(group),
                sampler=sampler,
                steps=steps,
                cfg_scale=cfg_scale,
                seed=seed + position,
            )
            for j, item in enumerate(group):
                clips[item] = audio[j].cpu()
            group = []
    wall = time.perf_counter() - start
    return GeneratedSet(clips, [float(s) for s in seconds], pipeline.sample_rate, wall)


def _features(name: str, clips: Sequence[torch.Tensor], sample_rate: int) -> torch.Tensor:
    if name == "mel_stats":
        return metrics.mel_statistics_features(clips, sample_rate)
    if name == "mfcc":
        return metrics.mfcc_features(clips, sample_rate)
    raise ValueError(f"unknown feature set {name!r}; known: {FEATURE_SETS}")


def distribution_metrics(
    real: Sequence[torch.Tensor],
    real_rate: int,
    generated: Sequence[torch.Tensor],
    generated_rate: int,
    embedding: EmbeddingModel | None = None,
) -> dict[str, float]:
    """Frechet (``fd_*``) and unbiased kernel (``kd_*``) distances between two sets of clips.

    On mel statistics and MFCCs always, on ``embedding`` features when one is given. Each set
    needs at least two clips; compare values only at equal set sizes (small sets bias FD up).
    """
    sets = {
        name: (_features(name, real, real_rate), _features(name, generated, generated_rate))
        for name in FEATURE_SETS
    }
    if embedding is not None:
        sets["embedding"] = (embedding(real, real_rate), embedding(generated, generated_rate))
    out = {}
    for name, (a, b) in sets.items():
        out[f"fd_{name}"] = metrics.frechet_distance(a, b)
        out[f"kd_{name}"] = metrics.kernel_distance(a, b)
    return out


def generation_metrics(
    real: Sequence[torch.Tensor],
    real_rate: int,
    generated: GeneratedSet,
    embedding: EmbeddingModel | None = None,
) -> dict[str, float]:
    """Distribution distances, duration accuracy and speed of a generated set against real clips."""
    out = distribution_metrics(real, real_rate, generated.clips, generated.sample_rate, embedding)
    rate = generated.sample_rate
    length_errors = [abs(c.shape[-1] / rate - s) for c, s in zip(generated.clips, generated.asked_seconds)]
    audible = [audible_seconds(c, rate) / s for c, s in zip(generated.clips, generated.asked_seconds)]
    out.update(
        {
            "duration_error_s": sum(length_errors) / len(length_errors),
            "audible_duration_ratio": sum(audible) / len(audible),
            "realtime_factor": generated.realtime_factor,
            "generated_clips": float(len(generated.clips)),
            "generated_seconds": sum(c.shape[-1] for c in generated.clips) / rate,
        }
    )
    return {k: (v if math.isfinite(v) else float("nan")) for k, v in out.items()}
