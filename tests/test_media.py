"""Spectrogram images and audio examples for the loggers."""

import torch

from latentaudio.training.media import log_audio_examples, spectrogram_image


def test_spectrogram_of_a_clip_shorter_than_one_fft_frame(tmp_path):
    path = spectrogram_image(torch.randn(1, 100), 16000, tmp_path / "short.png")
    assert path.stat().st_size > 0


def test_examples_are_written_as_wav_and_png_without_a_logger(tmp_path):
    examples = {"tone": torch.sin(torch.arange(8000) * 0.1).unsqueeze(0) * 0.5}
    written = log_audio_examples([], tmp_path, 12, examples, 16000, "samples")
    folder = tmp_path / "samples" / "step0000012"
    assert written == [folder / "tone.wav"] and (folder / "tone.png").exists()
