"""Condition encoders for the DiT and the ``Conditioner`` that combines them.

Where each condition goes:
- global (one vector per item, summed into ``global_cond`` of size ``global_dim``, which the
  DiT adds to its time embedding for adaLN): timing (``seconds_start``, ``seconds_total``),
  the class label, the musical tempo (``bpm``) and key (``key``, an index into
  ``latentaudio.data.metadata.KEYS``), and a speaker's voice (``voice``: the statistics of
  normalised latents of a recording of them, :func:`voice_statistics`). Summing keeps the size fixed whichever are enabled.
- cross (a token sequence for cross-attention, ``cross_cond`` (B, S, cross_dim) with
  ``cross_mask`` (B, S) bool, True = real token): the caption, and with ``label_tokens`` the
  label as one more token in front of it. Timing is global only.
- aligned (frame by frame, ``aligned_cond`` (B, aligned_dim, T), which the DiT reads beside the
  noisy latents): speech's timed phonemes, ``phoneme_ids`` (B, T, UNIT_SLOTS) and
  ``phoneme_progress`` (B, T, 2) from :mod:`latentaudio.speech.units`; and with ``tempo_grid``
  the tempo once more, as a beat clock (``musical.BeatGrid``).

The musical conditions' own encoders (tempo, beat clock, key as pitch classes) live in
:mod:`latentaudio.dit.musical`; this module wires every condition into the three places.

Classifier-free guidance: each condition has a null form, used both when training drops it
(probability ``cfg_dropout``) and for ``force_uncond=True``: a learned null timing embedding,
label -1 (a learned null label embedding), bpm NaN and key -1 (learned null embeddings: also
what an item without a tempo or key gets), the empty caption "" (which still encodes to
its start and end tokens, so the unconditional text is one fixed, attendable sequence) and,
for phonemes, every frame ``<pad>`` with zero progress (what a model without text hears).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from latentaudio.dit.musical import (
    KEY_COUNT,
    KEY_ENCODINGS,
    BeatGrid,
    KeyPitchClassConditioner,
    TempoConditioner,
)
from latentaudio.dit.text_encoders import ByteTextEncoder, T5TextEncoder
from latentaudio.speech.symbols import SymbolVocabulary
from latentaudio.speech.units import PROGRESS_FEATURES, UNIT_SLOTS

UNCOND_MODES = ("null", "zero_context")
CONDITION_NAMES = ("timing", "label", "text", "tempo", "key", "phonemes", "voice")
BATCH_KEYS = (  # what forward reads
    "seconds_total",
    "seconds_start",
    "label",
    "caption",
    "bpm",
    "key",
    "phoneme_ids",
    "phoneme_progress",
    "voice",
)


#################################################################################
#                              Global conditions                                #
#################################################################################


class TimingConditioner(nn.Module):
    """Embeds (seconds_start, seconds_total) (B,) float tensors into (B, dim).

    Seconds are clamped to [0, max_seconds], scaled to [0, 1] and expanded into Fourier
    features at geometrically spaced frequencies (periods from 2 * max_seconds down to
    ``resolution`` seconds), then an MLP. Unlike learned buckets this is continuous: a
    duration never seen in training still lands between ones that were, and nothing is
    quantised to a bucket width.
    """

    def __init__(
        self, dim: int, max_seconds: float = 512.0, num_frequencies: int = 32, resolution: float = 0.25
    ):
        super().__init__()
        self.dim = dim
        self.max_seconds = max_seconds
        highest = max(max_seconds / resolution, 1.0)  # cycles over the unit range
        freqs = torch.logspace(math.log10(0.5), math.log10(highest), num_frequencies)
        self.register_buffer("freqs", freqs, persistent=False)
        features = 2 * (2 * num_frequencies + 1)
        self.mlp = nn.Sequential(nn.Linear(features, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.null = nn.Parameter(torch.zeros(dim))

    def fourier(self, seconds: Tensor) -> Tensor:
        u = (seconds.float().clamp(0.0, self.max_seconds) / self.max_seconds)[:, None]  # (B, 1)
        angles = 2 * math.pi * u * self.freqs[None]  # (B, F)
        return torch.cat([u, angles.sin(), angles.cos()], dim=-1)  # (B, 2F + 1)

    def forward(self, seconds_start: Tensor, seconds_total: Tensor) -> Tensor:
        features = torch.cat([self.fourier(seconds_start), self.fourier(seconds_total)], dim=-1)
        return self.mlp(features.to(self.null.device))  # (B, dim)


class NumberConditioner(nn.Module):
    """A number (B,) float into (B, dim): clamped to [low, high], scaled to [0, 1], expanded into
    [u, sin(2 pi u f), cos(2 pi u f)] at ``features // 2`` learned frequencies f, then one linear
    layer (Stable Audio Open's NumberConditioner for seconds_start and seconds_total)."""

    def __init__(self, dim: int, low: float, high: float, features: int = 256):
        super().__init__()
        if not high > low:
            raise ValueError(f"a number condition needs low < high, got [{low}, {high}]")
        self.low, self.high = float(low), float(high)
        self.frequencies = nn.Parameter(torch.randn(features // 2))  # (F/2,)
        self.linear = nn.Linear(features + 1, dim)

    def forward(self, values: Tensor) -> Tensor:
        values = values.to(self.frequencies.device, torch.float32).clamp(self.low, self.high)
        u = ((values - self.low) / (self.high - self.low))[:, None].to(self.frequencies.dtype)  # (B, 1)
        angles = 2 * math.pi * u * self.frequencies[None]  # (B, F/2)
        return self.linear(torch.cat([u, angles.sin(), angles.cos()], dim=-1))  # (B, dim)


class LabelConditioner(nn.Module):
    """Class labels (B,) long in [0, num_labels), or -1 for "no label", into (B, dim)."""

    def __init__(self, num_labels: int, dim: int):
        super().__init__()
        self.num_labels = num_labels
        self.embedding = nn.Embedding(num_labels + 1, dim)  # the last row is the null label
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, labels: Tensor) -> Tensor:
        labels = labels.long().to(self.embedding.weight.device)
        if ((labels < -1) | (labels >= self.num_labels)).any():
            raise ValueError(f"labels must lie in [-1, {self.num_labels}), got {labels.tolist()}")
        return self.embedding(torch.where(labels < 0, self.num_labels, labels))  # (B, dim)


def voice_statistics(latents: Tensor, mask: Tensor | None = None) -> Tensor:
    """(B, 2D): the mean and standard deviation over time of normalised latents (B, D, T), over
    the frames where ``mask`` (B, T) is True: what a recording says of its speaker's voice
    (timbre, pitch, level) and little of its words."""
    weight = torch.ones_like(latents[:, :1]) if mask is None else mask[:, None].to(latents)  # (B, 1, T)
    count = weight.sum(-1).clamp_min(1.0)  # (B, 1)
    mean = (latents * weight).sum(-1) / count  # (B, D)
    variance = ((latents - mean[..., None]).pow(2) * weight).sum(-1) / count
    return torch.cat([mean, variance.sqrt()], dim=-1)  # (B, 2D)


class VoiceConditioner(nn.Module):
    """A voice, as :func:`voice_statistics` (B, 2D) (a row of NaN: none), into (B, dim);
    a learned null for none or dropped."""

    def __init__(self, latent_dim: int, dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.mlp = nn.Sequential(nn.Linear(2 * latent_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.null = nn.Parameter(torch.zeros(dim))

    def forward(self, statistics: Tensor) -> Tensor:
        statistics = statistics.float().to(self.null.device)
        if statistics.shape[-1] != 2 * self.latent_dim:
            raise ValueError(
                f"voice statistics have {statistics.shape[-1]} values, this model reads {2 * self.latent_dim} "
                "(mean and std of each latent channel): they come from another VAE"
            )
        missing = torch.isnan(statistics).any(-1, keepdim=True)  # (B, 1)
        embedded = self.mlp(torch.nan_to_num(statistics))
        return torch.where(missing, self.null, embedded)  # (B, dim)


class PhonemeConditioner(nn.Module):
    """Timed phonemes, frame by frame, into (B, dim, T) features for the DiT's aligned input.

    Each unit's symbols are embedded per slot (slot k of symbol s: row ``k * symbols + s``,
    ``<pad>`` rows fixed at zero) and summed, the progress features (where in its phoneme a
    frame is, and the phoneme's log duration) are projected and added, and ``depth`` residual
    convolutions (kernel 5) let each frame see its neighbours, the way F5-TTS refines its text
    before the transformer. All-``<pad>`` frames with zero progress are the null (no text).
    """

    def __init__(self, dim: int, symbols: int, depth: int = 2, kernel: int = 5):
        super().__init__()
        self.dim, self.symbols = dim, symbols
        self.embedding = nn.Embedding(UNIT_SLOTS * symbols, dim)
        nn.init.normal_(self.embedding.weight, std=0.02)
        self.progress = nn.Linear(PROGRESS_FEATURES, dim)
        self.convs = nn.ModuleList(
            [
                nn.Sequential(nn.Conv1d(dim, dim, kernel, padding=kernel // 2), nn.GELU(approximate="tanh"))
                for _ in range(depth)
            ]
        )
        self.register_buffer("slot_offsets", torch.arange(UNIT_SLOTS) * symbols, persistent=False)

    def forward(self, ids: Tensor, progress: Tensor) -> Tensor:
        """ids (B, T, UNIT_SLOTS) long, progress (B, T, 2) -> (B, dim, T)."""
        ids = ids.long().to(self.embedding.weight.device)
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.symbols):
            raise ValueError(f"phoneme ids must lie in [0, {self.symbols}): the model's symbol table")
        pad = (ids == SymbolVocabulary.pad_id).unsqueeze(-1)  # (B, T, K, 1)
        embedded = self.embedding(ids + self.slot_offsets).masked_fill(pad, 0.0).sum(2)  # (B, T, dim)
        h = (embedded + self.progress(progress.to(embedded))).transpose(1, 2)  # (B, dim, T)
        for conv in self.convs:
            h = h + conv(h)
        return h


#################################################################################
#                                  Conditioner                                  #
#################################################################################


class Conditioner(nn.Module):
    """Turns a batch's metadata into the DiT's ``global_cond``, ``cross_cond`` and ``cross_mask``.

    Args:
        global_dim: size of ``global_cond`` (the DiT's ``global_cond_dim`` is
            ``self.global_cond_dim``: this, or 0 when neither timing nor labels are on).
        cross_dim: size of the text tokens (the DiT's ``cross_attn_dim`` is ``self.cross_attn_dim``).
        timing: condition on ``seconds_start`` and ``seconds_total``.
        num_labels: condition on ``label`` (0: off).
        text: None, "bytes" (``ByteTextEncoder``, trained jointly) or "t5" (``T5TextEncoder``
            from ``text_path``, frozen, followed by a trained projection to ``cross_dim``).
        text_path: local folder of the T5 model and tokenizer.
        cfg_dropout: probability of dropping each condition in training, one float for all
            or a dict over "timing", "label", "text" (missing keys: 0).
        max_seconds: the timing embedding's range.
        text_depth, text_heads, text_max_length: the byte encoder's size (max_length for T5 too).
        label_tokens: also give the label to cross-attention as a learned token (needs
            ``cross_dim`` > 0): unlike the global path it does not pass through the zero-initialised
            adaLN gates, so the label reaches every block from the first step.
        tempo: condition on ``bpm`` (beats per minute, NaN for none).
        tempo_grid: with ``tempo``, also give it frame by frame as a beat clock
            (:class:`BeatGrid`, ``frame_rate`` latent frames a second) in the aligned input.
        key: condition on ``key`` (an index into the 24 keys of ``metadata.KEYS``, -1 for none).
        phonemes: condition on timed phonemes (speech), frame by frame: ``phoneme_dim``
            channels added to the DiT's aligned input (``self.aligned_dim``).
        phoneme_dim, phoneme_symbols, phoneme_depth: their size, the symbol table's length
            (0: this version's :class:`SymbolVocabulary`) and the refining convolutions.
        voice: condition on ``voice`` (:func:`voice_statistics` of a recording of the speaker,
            NaN for none) of latents with ``voice_latent_dim`` channels: the DiT's training
            takes it from the clip itself, speech prompts give it at inference.

    Stable Audio Open's conditioning (``conf/model/dit/sao_open_*.yaml``), as options:
        numbers: {batch key: [low, high]}, e.g. ``seconds_start`` and ``seconds_total``: each a
            `NumberConditioner` of size ``cross_dim``; their embeddings are concatenated into
            ``global_cond`` (so ``global_dim`` = their count x ``cross_dim``) and appended, in the
            same order, as tokens after the text. They are never dropped. Not combined with the
            other global conditions, which sum.
        text_model: the text encoder the weights expect (e.g. "t5-base"), recorded so a user
            knows which ``text_path`` to give; with ``text_projection=False`` a T5 conditioner
            builds without ``text_path`` and reads pre-encoded ``text_tokens`` (B, S, cross_dim)
            with ``text_mask`` (B, S) from the batch instead of captions.
        text_padding: "longest" or "max_length" (T5 tokens always padded to ``text_max_length``).
        text_projection: a trained linear layer after the T5 encoder (False: none; the encoder's
            size must be ``cross_dim``).
        mask_padding: False: cross-attention attends the padding tokens (zero vectors) too.
        uncond: the unconditional form for dropout and guidance: "null" (each condition's null,
            above) or "zero_context" (every cross-attention token zeroed, ``global_cond`` kept).
    """

    def __init__(
        self,
        global_dim: int,
        cross_dim: int = 0,
        timing: bool = True,
        num_labels: int = 0,
        text: str | None = None,
        text_path: str | None = None,
        cfg_dropout: float | dict[str, float] = 0.1,
        max_seconds: float = 512.0,
        text_depth: int = 2,
        text_heads: int = 4,
        text_max_length: int = 128,
        label_tokens: bool = False,
        tempo: bool = False,
        tempo_grid: bool = False,
        frame_rate: float = 0.0,
        key: bool = False,
        key_encoding: str = "embedding",
        phonemes: bool = False,
        phoneme_dim: int = 64,
        phoneme_symbols: int = 0,
        phoneme_depth: int = 2,
        voice: bool = False,
        voice_latent_dim: int = 0,
        numbers: dict[str, list[float]] | None = None,
        text_model: str | None = None,
        text_padding: str = "longest",
        text_projection: bool = True,
        mask_padding: bool = True,
        uncond: str = "null",
    ):
        super().__init__()
        if uncond not in UNCOND_MODES:
            raise ValueError(f"uncond={uncond!r}: choose one of {', '.join(UNCOND_MODES)}")
        if text_padding not in ("longest", "max_length"):
            raise ValueError(f"text_padding={text_padding!r}: choose 'longest' or 'max_length'")
        numbers = dict(numbers or {})
        if numbers:
            others = [
                name
                for name, on in (
                    ("timing", timing),
                    ("label", num_labels > 0),
                    ("tempo", tempo),
                    ("key", key),
                    ("voice", voice),
                )
                if on
            ]
            if others:
                raise ValueError(f"numbers are concatenated into global_cond, {others} are summed: not both")
            if cross_dim <= 0 or global_dim != len(numbers) * cross_dim:
                raise ValueError(
                    f"numbers {list(numbers)} need cross_dim > 0 and global_dim = {len(numbers)} x cross_dim"
                )
        if tempo_grid and not tempo:
            raise ValueError("tempo_grid gives the tempo frame by frame: it needs tempo=true")
        if key_encoding not in KEY_ENCODINGS:
            raise ValueError(f"key_encoding={key_encoding!r}: choose one of {', '.join(KEY_ENCODINGS)}")
        if text not in (None, "bytes", "t5"):
            raise ValueError(f"text must be None, 'bytes' or 't5', got {text!r}")
        if text is not None and cross_dim <= 0:
            raise ValueError("text conditioning needs cross_dim > 0")
        if label_tokens and (num_labels <= 0 or cross_dim <= 0):
            raise ValueError("label_tokens needs labels (num_labels > 0) and cross_dim > 0")
        if text == "t5" and not text_path and text_projection:
            raise ValueError("text='t5' needs text_path, a local folder with the model and tokenizer")
        if isinstance(cfg_dropout, dict):
            unknown = set(cfg_dropout) - set(CONDITION_NAMES)
            if unknown:
                raise ValueError(f"unknown cfg_dropout keys {sorted(unknown)}; known: {CONDITION_NAMES}")
        self.global_dim = global_dim
        self.cross_dim = cross_dim
        self.text = text
        self.text_model = text_model
        self.text_max_length = text_max_length
        self.mask_padding = mask_padding
        self.uncond = uncond
        self.numbers = nn.ModuleDict(
            {name: NumberConditioner(cross_dim, *bounds) for name, bounds in numbers.items()}
        )
        self.dropout = {
            name: float(cfg_dropout.get(name, 0.0) if isinstance(cfg_dropout, dict) else cfg_dropout)
            for name in CONDITION_NAMES
        }
        self.timing = TimingConditioner(global_dim, max_seconds) if timing else None
        self.label = LabelConditioner(num_labels, global_dim) if num_labels > 0 else None
        self.label_token = LabelConditioner(num_labels, cross_dim) if label_tokens else None
        self.tempo = TempoConditioner(global_dim) if tempo else None
        self.beat_grid = BeatGrid(frame_rate) if tempo_grid else None
        self.key: nn.Module | None = None
        if key:
            pitch_classes = key_encoding == "pitch_classes"
            self.key = (
                KeyPitchClassConditioner(global_dim)
                if pitch_classes
                else LabelConditioner(KEY_COUNT, global_dim)
            )
        symbols = phoneme_symbols or len(SymbolVocabulary())
        self.phonemes = PhonemeConditioner(phoneme_dim, symbols, phoneme_depth) if phonemes else None
        if voice and voice_latent_dim < 1:
            raise ValueError("voice conditioning needs voice_latent_dim, the VAE's latent channels")
        self.voice = VoiceConditioner(voice_latent_dim, global_dim) if voice else None
        self.text_encoder: nn.Module | None = None
        self.text_proj: nn.Module = nn.Identity()
        if text == "bytes":
            self.text_encoder = ByteTextEncoder(cross_dim, text_depth, text_heads, text_max_length)
        self.text_padding = text_padding
        self.text_projection = text_projection
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)  # tells the device
        if text == "t5" and text_path:
            self.attach_text_encoder(text_path)

    def attach_text_encoder(self, text_path: str) -> None:
        """Load the frozen T5 of the local folder ``text_path`` as this conditioner's text encoder.

        At construction (``text_path=``) a trained projection to ``cross_dim`` follows it; later (a
        model that reads T5 tokens directly, as Stable Audio Open's do: ``text_projection=False``),
        the encoder must give ``cross_dim`` channels, or this names the encoder the model expects.
        """
        if self.text != "t5":
            raise ValueError(f"this conditioner reads text={self.text!r}, not T5 embeddings")
        encoder = T5TextEncoder(text_path, self.text_max_length, frozen=True, padding=self.text_padding)
        if self.text_projection and isinstance(self.text_proj, nn.Identity):
            self.text_proj = nn.Linear(encoder.dim, self.cross_dim)
        elif not self.text_projection and encoder.dim != self.cross_dim:
            raise ValueError(
                f"the T5 in {text_path} gives {encoder.dim} channels, this model reads {self.cross_dim} "
                f"without a projection: it expects {self.text_model or 'another encoder'}"
            )
        self.text_encoder = encoder.to(self._anchor.device)

    # ------------------------------------------------------------------ sizes
    @property
    def global_cond_dim(self) -> int:
        globals_ = (self.timing, self.label, self.tempo, self.key, self.voice)
        return self.global_dim if len(self.numbers) or any(c is not None for c in globals_) else 0

    @property
    def cross_attn_dim(self) -> int:
        return self.cross_dim if (self.text or self.label_token is not None or len(self.numbers)) else 0

    @property
    def aligned_dim(self) -> int:
        """Channels this conditioner adds to the DiT's aligned input (phonemes, beat grid), 0 for none."""
        return sum(c.dim for c in (self.phonemes, self.beat_grid) if c is not None)

    # ------------------------------------------------------------------ forward
    def _keep(self, name: str, batch_size: int, force_uncond: bool) -> Tensor:
        """(B,) bool: True where the condition is kept."""
        device = self._anchor.device
        if force_uncond:
            return torch.zeros(batch_size, dtype=torch.bool, device=device)
        if self.training and self.dropout[name] > 0.0:
            return torch.rand(batch_size, device=device) >= self.dropout[name]
        return torch.ones(batch_size, dtype=torch.bool, device=device)

    def forward(
        self, batch: dict, force_uncond: bool = False, frames: int | None = None
    ) -> dict[str, Tensor | None]:
        """batch may hold ``seconds_start``, ``seconds_total`` (B,) float, ``label`` (B,) long,
        ``bpm`` (B,) float, ``key`` (B,) long, ``caption`` list[str] and ``phoneme_ids`` (B, T,
        UNIT_SLOTS) with ``phoneme_progress`` (B, T, 2). A missing key means that condition is
        unconditional for the whole batch (``seconds_start`` alone defaults to 0; missing phonemes
        and the beat grid need ``frames``, the latent length). Returns ``global_cond`` (B,
        global_dim) or None, ``cross_cond`` (B, S, cross_dim) or None, ``cross_mask`` (B, S) or
        None and ``aligned_cond`` (B, aligned_dim, T) or None.
        """
        batch_size = _batch_size(batch)
        device = self._anchor.device
        global_cond = None
        if self.timing is not None:
            if "seconds_total" in batch:
                total = torch.as_tensor(batch["seconds_total"], dtype=torch.float32, device=device)
                start = torch.as_tensor(batch.get("seconds_start", torch.zeros_like(total)), device=device)
                keep = self._keep("timing", batch_size, force_uncond)
                timing = torch.where(keep[:, None], self.timing(start, total), self.timing.null)  # (B, D)
            else:
                timing = self.timing.null.expand(batch_size, -1)  # (B, D)
            global_cond = timing
        labels = None
        if self.label is not None:
            labels = torch.as_tensor(batch.get("label", [-1] * batch_size), dtype=torch.long, device=device)
            labels = torch.where(self._keep("label", batch_size, force_uncond), labels, -1)
            embedded = self.label(labels)  # (B, D)
            global_cond = embedded if global_cond is None else global_cond + embedded
        bpm = None
        if self.tempo is not None:
            bpm = torch.as_tensor(
                batch.get("bpm", [math.nan] * batch_size), dtype=torch.float32, device=device
            )
            bpm = torch.where(self._keep("tempo", batch_size, force_uncond), bpm, math.nan)
            embedded = self.tempo(bpm)  # (B, D)
            global_cond = embedded if global_cond is None else global_cond + embedded
        if self.key is not None:
            keys = torch.as_tensor(batch.get("key", [-1] * batch_size), dtype=torch.long, device=device)
            keys = torch.where(self._keep("key", batch_size, force_uncond), keys, -1)
            embedded = self.key(keys)  # (B, D)
            global_cond = embedded if global_cond is None else global_cond + embedded
        if self.voice is not None:
            width = 2 * self.voice.latent_dim
            voice = torch.as_tensor(
                batch.get("voice", torch.full((batch_size, width), math.nan)),
                dtype=torch.float32,
                device=device,
            )
            voice = torch.where(self._keep("voice", batch_size, force_uncond)[:, None], voice, math.nan)
            embedded = self.voice(voice)  # (B, D)
            global_cond = embedded if global_cond is None else global_cond + embedded

        number_tokens = []
        for name, embedder in self.numbers.items():
            if name not in batch and name != "seconds_start":
                raise ValueError(f"this model is conditioned on {name}: give it in the batch")
            values = batch.get(name, [0.0] * batch_size)
            embedded = embedder(torch.as_tensor(values, dtype=torch.float32, device=device))  # (B, D)
            global_cond = embedded if global_cond is None else torch.cat([global_cond, embedded], dim=-1)
            number_tokens.append(embedded[:, None])  # (B, 1, D)

        token_sets: list[tuple[Tensor, Tensor]] = []
        if self.label_token is not None:
            # the same labels (after dropout) as the global path: one condition, two ways in
            token = self.label_token(labels)[:, None]  # (B, 1, cross_dim)
            token_sets.append((token, torch.ones(batch_size, 1, dtype=torch.bool, device=device)))
        zero_context = self.uncond == "zero_context"
        if self.text is not None:
            # with zero_context, text is dropped below with every other token, not replaced by ""
            keep = None if zero_context else self._keep("text", batch_size, force_uncond)
            token_sets.append(self._text_tokens(batch, batch_size, keep))
        ones = torch.ones(batch_size, 1, dtype=torch.bool, device=device)
        token_sets += [(tokens, ones) for tokens in number_tokens]
        cross_cond = cross_mask = None
        if token_sets:
            cross_cond = torch.cat([tokens for tokens, _ in token_sets], dim=1)  # (B, S', cross_dim)
            cross_mask = torch.cat([mask for _, mask in token_sets], dim=1)  # (B, S')
            if not self.mask_padding:
                cross_mask = torch.ones_like(cross_mask)
            if zero_context:
                keep = self._keep("text", batch_size, force_uncond)[:, None, None]  # (B, 1, 1)
                cross_cond = torch.where(keep, cross_cond, 0.0)
        aligned = []
        if self.phonemes is not None:
            aligned.append(self._phoneme_features(batch, batch_size, force_uncond, frames))
        if self.beat_grid is not None:
            if frames is None:
                raise ValueError("a DiT with a beat grid needs frames, the latent length")
            start = torch.as_tensor(batch.get("seconds_start", [0.0] * batch_size), device=device)
            aligned.append(self.beat_grid(bpm, start, frames))  # the tempo as kept above
        aligned_cond = torch.cat(aligned, dim=1) if aligned else None
        return dict(
            global_cond=global_cond, cross_cond=cross_cond, cross_mask=cross_mask, aligned_cond=aligned_cond
        )

    def _text_tokens(self, batch: dict, batch_size: int, keep: Tensor | None) -> tuple[Tensor, Tensor]:
        """(tokens (B, S, cross_dim), mask (B, S)) of the captions, or of pre-encoded ``text_tokens``;
        ``keep`` (B,) drops captions to "" (pre-encoded tokens to zeros) where False."""
        device = self._anchor.device
        if "text_tokens" in batch:
            tokens = torch.as_tensor(batch["text_tokens"], device=device).float()  # (B, S, E)
            mask = batch.get("text_mask")
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=device) if mask is None else mask
            mask = torch.as_tensor(mask, device=device).bool()
            if keep is not None:
                tokens = torch.where(keep[:, None, None], tokens, 0.0)
            return self.text_proj(tokens) * mask[..., None], mask
        if self.text_encoder is None and not any(batch.get("caption") or []):
            # no prompt and no encoder: the all-zero tokens of the unconditional branch
            zeros = torch.zeros(batch_size, self.text_max_length, self.cross_dim, device=device)
            return zeros, torch.zeros(batch_size, self.text_max_length, dtype=torch.bool, device=device)
        if self.text_encoder is None:
            raise ValueError(
                f"this model reads {self.text_model or self.text} text embeddings, and no encoder is loaded: "
                "give text_path=<a local folder holding it> (or text_tokens in the batch)"
            )
        captions = list(batch.get("caption", [""] * batch_size))
        if keep is not None:
            captions = [caption if k else "" for caption, k in zip(captions, keep.tolist())]
        tokens, mask = self.text_encoder(captions)  # (B, S, E), (B, S)
        return self.text_proj(tokens) * mask[..., None], mask  # (B, S, cross_dim)

    def _phoneme_features(
        self, batch: dict, batch_size: int, force_uncond: bool, frames: int | None
    ) -> Tensor:
        device = self._anchor.device
        if "phoneme_ids" in batch:
            ids = torch.as_tensor(batch["phoneme_ids"], device=device).long()  # (B, T, K)
            progress = torch.as_tensor(batch["phoneme_progress"], device=device).float()  # (B, T, 2)
            if frames is not None and ids.shape[1] != frames:
                raise ValueError(f"phoneme_ids cover {ids.shape[1]} frames, the latents {frames}")
        elif frames is None:
            raise ValueError("a phoneme-conditioned model needs phoneme_ids, or frames for the null text")
        else:
            ids = torch.zeros(batch_size, frames, UNIT_SLOTS, dtype=torch.long, device=device)
            progress = torch.zeros(batch_size, frames, PROGRESS_FEATURES, device=device)
        keep = self._keep("phonemes", batch_size, force_uncond)[:, None, None]  # (B, 1, 1)
        ids = torch.where(keep, ids, SymbolVocabulary.pad_id)
        progress = torch.where(keep, progress, 0.0)
        return self.phonemes(ids, progress)  # (B, phoneme_dim, T)


def _batch_size(batch: dict) -> int:
    for key in BATCH_KEYS:
        if key in batch:
            return len(batch[key])
    if "batch_size" in batch:
        return int(batch["batch_size"])
    raise ValueError(
        "cannot tell the batch size: give one of seconds_total, seconds_start, label, caption or batch_size"
    )
