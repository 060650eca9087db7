"""Audio examples and spectrogram images, sent to whichever loggers a run has.

wandb gets ``wandb.Audio`` and ``wandb.Image`` entries, TensorBoard ``add_audio`` and
``add_image``; every run also writes the files under ``<run>/samples/step<N>/``, so a
run with the CSV logger or none still leaves something to listen to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from latentaudio.audio import write_audio


def draw_spectrogram(axis, audio: torch.Tensor, sample_rate: int) -> None:
    """Draw the log-magnitude spectrogram of ``[channels, samples]`` audio (channel mean) on ``axis``."""
    signal = audio.detach().float().cpu().mean(dim=0)
    n_fft = 512 if sample_rate <= 24000 else 1024
    seconds = signal.shape[-1] / sample_rate
    if signal.shape[-1] < n_fft:  # a very short clip: pad so the STFT has one full frame
        signal = torch.nn.functional.pad(signal, (0, n_fft - signal.shape[-1]))
    window = torch.hann_window(n_fft)
    spec = torch.stft(signal, n_fft, hop_length=n_fft // 4, window=window, return_complex=True).abs()
    db = 20 * torch.log10(spec.clamp_min(1e-5))
    axis.imshow(
        db.numpy(),
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=float(db.max()) - 80,
        extent=(0, seconds, 0, sample_rate / 2000),
    )


def spectrogram_image(audio: torch.Tensor, sample_rate: int, path: str | Path, title: str = "") -> Path:
    """Save a log-magnitude spectrogram of ``[channels, samples]`` audio as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3), dpi=100)
    draw_spectrogram(axis, audio, sample_rate)
    axis.set_xlabel("seconds")
    axis.set_ylabel("kHz")
    if title:
        axis.set_title(title, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def log_audio_examples(
    loggers,
    output_dir: str | Path,
    step: int,
    examples: dict[str, torch.Tensor],
    sample_rate: int,
    prefix: str,
) -> list[Path]:
    """Write and log named ``[channels, samples]`` clips with their spectrograms."""
    folder = Path(output_dir) / "samples" / f"step{step:07d}"
    written = []
    for name, audio in examples.items():
        wav = write_audio(folder / f"{name}.wav", audio, sample_rate)
        png = spectrogram_image(audio, sample_rate, folder / f"{name}.png", title=name)
        written.append(wav)
        for logger in loggers:
            _send(logger, f"{prefix}/{name}", audio, png, sample_rate, step)
    return written


def _send(logger, key: str, audio: torch.Tensor, png: Path, sample_rate: int, step: int) -> None:
    kind = type(logger).__name__
    if kind == "WandbLogger":
        import wandb

        mono = audio.detach().float().cpu().numpy().T  # (T, C)
        logger.experiment.log(
            {
                key: wandb.Audio(mono, sample_rate=sample_rate),
                f"{key}_spectrogram": wandb.Image(str(png)),
                "trainer/global_step": step,
            }
        )
    elif kind == "TensorBoardLogger":
        import matplotlib.image

        writer = logger.experiment
        writer.add_audio(key, audio.detach().float().cpu().mean(0), step, sample_rate=sample_rate)
        image = matplotlib.image.imread(str(png))[..., :3]
        writer.add_image(f"{key}_spectrogram", np.ascontiguousarray(image.transpose(2, 0, 1)), step)
