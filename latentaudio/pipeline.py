"""Generate audio with a trained VAE and DiT, from Python, without Hydra.

from latentaudio.pipeline import Pipeline
pipe = Pipeline.from_bundles("outputs/demo/vae/export", "outputs/demo/dit/export")
audio = pipe.generate(seconds=4, n=2, label="pluck", seed=0)   # (2, channels, samples) at pipe.sample_rate
clip, sr = read_audio("take.wav")                              # any rate, any channel count
pipe.vary(clip, sr, strength=0.5)                              # audio to audio
pipe.inpaint(clip, sr, ranges=[(1.0, 1.5), (3.0, 3.2)])        # regenerate these seconds, keep the rest
pipe.extend(clip, sr, seconds=8)                               # continue the clip by 8 s
pipe.enhance(noisy, sr, strength=0.3)                          # denoise (trained path if the DiT has one)
pipe.pitch(clip, sr, semitones=3)                              # transpose, same duration
pipe.tempo(clip, sr, rate=1.25)                                # 1.25x faster, same pitch
pipe.speed(clip, sr, rate=0.8)                                 # tape-style: slower and lower
pipe.generate(prompt="warm pad", negative="distorted")         # steer away from a caption
pipe.speak("The red fox sees four old boats.", prompt=voice, sample_rate=sr,
             prompt_text="What the voice clip says.")           # a phoneme-trained DiT: text to speech

Each editing mode turns the input's latents into an ``Edit`` (``latentaudio.editing``) and
hands it to one routine, ``Pipeline._edit``, that samples and decodes; pitch, tempo and speed
first transform the input with signal processing (``editing.pitch`` / ``tempo`` / ``speed``),
then let the model regenerate ``strength`` of it, as ``vary`` does.

Everything runs a training window at a time; longer clips are made of overlapping windows
crossfaded in latent space.
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from tqdm import tqdm

from latentaudio import editing, retiming
from latentaudio.autoencoder import Autoencoder
from latentaudio.bundle import Bundle, check_same_vae, load_bundle
from latentaudio.data import metadata
from latentaudio.devices import bf16_for
from latentaudio.dit.aligned import aligned_input, crossfade_ramp, nothing_known
from latentaudio.dit.denoiser import Denoiser
from latentaudio.dit.diffusion import make_objective, objective_args
from latentaudio.dit.samplers import (
    SCHEDULE_KEYS,
    VALID_SAMPLERS,
    check_sampler,
    replace_known,
    resolve_sampling,
    sample,
)
from latentaudio.speech import synthesis


class SamplingOutOfMemoryError(RuntimeError):
    """The device ran out of memory while sampling or decoding; the message names what to lower."""


def _reports_out_of_memory(stage: str):
    """Turn an out-of-memory error of ``method(frames, ..., n, ...)`` into one that names what to lower."""

    def wrap(method):
        signature = inspect.signature(method)

        @functools.wraps(method)
        def run(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except torch.cuda.OutOfMemoryError as error:
                named = signature.bind(self, *args, **kwargs).arguments
                if "x0" in named:
                    n, frames = named["x0"].shape[0], named["x0"].shape[-1]
                else:
                    n, frames = named["n"], named["frames"]
                raise self._out_of_memory(stage, n, frames) from error

        return run

    return wrap


class Pipeline:
    def __init__(
        self,
        autoencoder: Autoencoder,
        dit_bundle: Bundle,
        device: str | torch.device = "cpu",
        text_path: str | Path | None = None,
        sample_precision: str = "auto",
        decode_detail: bool | None = None,
    ):
        # bf16 autocast of the DiT: "auto" turns it on on a GPU only (CPU outputs stay fp32's)
        self.sample_bf16 = bf16_for(sample_precision, device, "sample_precision", auto_on_cpu=False)
        meta = dit_bundle.meta
        check_same_vae(
            meta["vae_hash"],
            autoencoder.hash,
            f"the DiT bundle {dit_bundle.path}",
            f"pass the VAE bundle the DiT was trained with, not {autoencoder.bundle.path}",
        )
        self.autoencoder = autoencoder
        self.bundle = dit_bundle
        self.device = torch.device(device)
        self.denoiser = Denoiser(
            dit_bundle.build("dit", device), dit_bundle.build("conditioner", device)
        ).eval()
        self._attach_text_encoder(text_path or (meta.get("text_encoder") or {}).get("path"))
        self.objective = make_objective(**objective_args(meta["objective"]))
        stats = meta["latent_statistics"]
        shape = (1, -1, 1)
        self.latent_mean = torch.tensor(stats["mean"], device=self.device).view(shape)
        self.latent_std = torch.tensor(stats["std"], device=self.device).view(shape)
        self.labels: list[str] = list(meta.get("labels") or [])
        self.adapters: list[dict] = []  # LoRA adapters applied: name, path, hash, scale
        self.defaults: dict = {"steps": 50, "cfg_scale": 3.0, **self._stored_sampling(meta)}
        # the caller's choice, else the DiT's (sampling.decode_detail), else the VAE's rule; set on
        # the autoencoder, so what shares it (make evaluate's VAE floors) decodes as this DiT's clips
        autoencoder.choose_generated_decode(
            self.defaults.get("decode_detail") if decode_detail is None else decode_detail
        )
        self.train_seconds: float = meta["train_seconds"]
        # long clips go a training window at a time, overlapping by a quarter window
        self.window_frames: int = int(meta.get("crop_frames") or self.frames_for(self.train_seconds))
        self.overlap_frames: int = max(1, self.window_frames // 4)
        # known latents and their mask: the aligned channels the conditioner (phonemes) does not fill
        self.has_aligned = self.denoiser.dit.aligned_cond_channels > self.denoiser.conditioner.aligned_dim
        aligned = meta.get("aligned") or {}
        self.aligned_task: str | None = aligned.get("task") if self.has_aligned else None

    def _attach_text_encoder(self, text_path: str | Path | None) -> None:
        """Load the T5 a DiT reads its prompt through (not in the bundle: Stable Audio Open's) from
        the local folder ``text_path``; without one, a prompt is refused when it is asked for."""
        conditioner = self.denoiser.conditioner
        if text_path in (None, "") or conditioner.text != "t5" or conditioner.text_encoder is not None:
            return
        folder = Path(text_path).expanduser()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"text_path={text_path}: no T5 there (a folder written by save_pretrained, with config.json, "
                f"model.safetensors and the tokenizer); {self.bundle.path} expects "
                f"{conditioner.text_model or 'a T5 encoder'}"
            )
        conditioner.attach_text_encoder(str(folder))

    def _stored_sampling(self, meta: dict) -> dict:
        """The bundle's sampling defaults, resolved; a stored sampler that does not fit the
        objective (bundles exported before the config check) gives way to the objective's default."""
        stored = {k: v for k, v in (meta.get("sampling") or {}).items() if v is not None}
        sampler = stored.get("sampler")
        if sampler is not None and sampler not in VALID_SAMPLERS[self.objective.name]:
            warnings.warn(
                f"{self.bundle.path}/meta.json: sampling.sampler={sampler} does not work with the "
                f"{self.objective.name} objective; using its default instead",
                stacklevel=3,
            )
            stored.pop("sampler")
        return resolve_sampling(self.objective.name, stored)

    @classmethod
    def from_bundles(
        cls,
        vae: str | Path,
        dit: str | Path,
        device: str | torch.device = "cpu",
        chunk_seconds: float = 20.0,
        lora: list[str | Path] | None = None,
        lora_scale: list[float] | float = 1.0,
        decode_precision: str = "auto",
        sample_precision: str = "auto",
        text_path: str | Path | None = None,
        decode_detail: bool | None = None,
    ) -> Pipeline:
        """``chunk_seconds``: longer audio is decoded in overlapping chunks of this length (less memory).
        ``decode_precision``: "auto" (bf16 where the device has native bf16: faster, within -37 dB of
        fp32), "fp32" or "bf16" (see ``latentaudio.autoencoder``). ``sample_precision``: the DiT's,
        "auto" (bf16 autocast on a GPU, fp32 on a CPU), "fp32" or "bf16".
        ``text_path``: the local T5 folder of a DiT that reads T5 embeddings without holding the
        T5 (an imported Stable Audio Open bundle; default: the folder recorded at import).
        ``decode_detail``: decode generated latents with their detail channels (True) or from the
        spectral channels alone (False); None: the DiT bundle's choice, else the VAE's
        (`Autoencoder.choose_generated_decode`).

        ``lora``: adapter bundles (from ``make finetune``) applied to the DiT, each at its
        ``lora_scale`` (one number for all, or one per adapter).
        """
        autoencoder = Autoencoder.from_bundle(
            vae, device, chunk_seconds=chunk_seconds, decode_precision=decode_precision
        )
        pipeline = cls(
            autoencoder, load_bundle(dit, kind="dit"), device, text_path, sample_precision, decode_detail
        )
        if lora:
            from latentaudio.dit.lora import pair_scales

            for path, scale in pair_scales(list(lora), lora_scale):
                pipeline.add_adapter(path, scale)
        return pipeline

    def add_adapter(self, path: str | Path, scale: float = 1.0) -> str:
        """Apply the LoRA adapter bundle at ``path`` at ``scale`` (0: off); returns its name.

        An adapter trained on another DiT bundle is refused, naming both hashes; its new labels
        become known to :meth:`generate` and the editing modes.
        """
        from latentaudio.dit.lora import add_adapter

        name = f"adapter{len(self.adapters)}"
        adapter = load_bundle(path, kind="lora")
        self.labels += add_adapter(self.denoiser, adapter, name, float(scale), self.bundle.hash, self.labels)
        self.adapters.append({"name": name, "path": str(path), "hash": adapter.hash, "scale": float(scale)})
        return name

    def set_adapter_scale(self, name: str, scale: float) -> None:
        """Change the scale of an applied adapter (by the name :meth:`add_adapter` returned)."""
        from latentaudio.dit.lora import set_scale

        entry = next((a for a in self.adapters if a["name"] == name), None)
        if entry is None:
            raise ValueError(f"no adapter named {name!r}; applied: {[a['name'] for a in self.adapters]}")
        set_scale(self.denoiser, name, scale)
        entry["scale"] = float(scale)

    @property
    def sample_rate(self) -> int:
        return self.autoencoder.sample_rate

    def frames_for(self, seconds: float) -> int:
        return max(1, math.ceil(seconds * self.sample_rate / self.autoencoder.hop))

    def conditions(
        self,
        n: int,
        seconds: float,
        prompt: str | None = None,
        label: str | int | None = None,
        bpm: float | None = None,
        key: str | None = None,
    ) -> dict:
        """The conditioning batch of ``n`` items. A DiT with tempo or key conditions reads them
        from the prompt ("... in A minor at 120 bpm") when ``bpm`` / ``key`` are not given, as its
        training read them from captions without bpm and key columns."""
        conditioner = self.denoiser.conditioner
        asked = metadata.caption_attributes({"caption": prompt or ""})
        if bpm is None and conditioner.tempo is not None:
            bpm = asked.get("bpm")
        if key is None and conditioner.key is not None:
            key = asked.get("key")
        batch: dict = {
            "seconds_start": torch.zeros(n, device=self.device),
            "seconds_total": torch.full((n,), float(seconds), device=self.device),
            "caption": [prompt or ""] * n,
            "label": torch.full((n,), self.label_index(label), dtype=torch.long, device=self.device),
            "bpm": torch.full((n,), self.tempo_value(bpm), device=self.device),
            "key": torch.full((n,), self.key_index(key), dtype=torch.long, device=self.device),
        }
        return batch

    def tempo_value(self, bpm: float | None) -> float:
        """``bpm`` checked against what the DiT was trained with; NaN for none."""
        if bpm is None:
            return math.nan
        if self.denoiser.conditioner.tempo is None:
            raise ValueError(
                f"bpm={bpm} needs a DiT trained with conditioning.tempo=true; {self.bundle.path} has no tempo "
                "condition (a text DiT may still follow a tempo in its prompt)"
            )
        if not (math.isfinite(bpm) and bpm > 0):
            raise ValueError(f"bpm={bpm}: give a positive tempo in beats per minute")
        return float(bpm)

    def key_index(self, key: str | None) -> int:
        """``key`` ("A minor", "Db major", ...) as its index in ``metadata.KEYS``; -1 for none."""
        if key is None or key == "":
            return -1
        if self.denoiser.conditioner.key is None:
            raise ValueError(
                f"key={key!r} needs a DiT trained with conditioning.key=true; {self.bundle.path} has no key condition"
            )
        index = metadata.key_index(str(key))
        if index < 0:
            raise ValueError(f"key={key!r}: name a major or minor key, like 'A minor' or 'Eb major'")
        return index

    def negative_conditions(self, n: int, negative: str | None) -> dict | None:
        """The conditions that replace the prompt's in guidance's negative branch: the caption only,
        so timing and label guide both branches alike."""
        if negative is None:
            return None
        if self.denoiser.conditioner.text_encoder is None:
            raise ValueError(
                f"negative={negative!r} needs a DiT trained with text conditioning "
                f"(conditioning.text=bytes or t5); {self.bundle.path} has none"
            )
        return {"caption": [negative] * n}

    def label_index(self, label: str | int | None) -> int:
        if label is None or label == "":
            return -1
        if isinstance(label, int):
            if not -1 <= label < len(self.labels):
                raise ValueError(f"label {label} out of range: the model knows {len(self.labels)} labels")
            return label
        if label not in self.labels:
            known = ", ".join(self.labels) if self.labels else "none (trained without labels)"
            raise ValueError(f"unknown label {label!r}; the model knows: {known}")
        return self.labels.index(label)

    # ------------------------------------------------------------------ sampling
    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device="cpu").manual_seed(seed)

    @_reports_out_of_memory("sampling")
    @torch.inference_mode()
    def sample_latents(
        self,
        frames: int,
        batch: dict,
        n: int,
        sampler: str | None = None,
        steps: int | None = None,
        cfg_scale: float | None = None,
        cfg_rescale: float = 0.0,
        seed: int = 0,
        init: torch.Tensor | None = None,
        t_start: float = 1.0,
        on_step=None,
        progress: bool = False,
        known: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
        aligned_cond: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        description: str = "sampling",
        negative: dict | None = None,
    ) -> torch.Tensor:
        """Normalised latents (n, latent_dim, frames) from noise (or from ``init`` noised to ``t_start``).

        ``known`` (n, latent_dim, frames) with ``keep`` (n or 1, 1, frames) in [0, 1]: after every
        step the known latents are put back (``replace_known``: RePaint-style, crossfaded where
        ``keep`` is fractional), so where ``keep`` is 1 the result equals ``known`` exactly. A DiT with aligned
        conditioning also gets the known frames as input (``aligned_cond``, built from
        ``known``/``keep`` unless given). ``generator`` (seeded from ``seed`` if absent) draws all
        noise, so one seed gives the same output bit for bit. ``negative``: conditions that replace
        those of ``batch`` in the guidance's negative branch (see ``Denoiser.guided``).
        """
        sampler = sampler or self.defaults["sampler"]
        steps = int(steps or self.defaults["steps"])
        cfg_scale = float(self.defaults["cfg_scale"] if cfg_scale is None else cfg_scale)
        check_sampler(self.objective, sampler)
        generator = generator or self.generator(seed)
        shape = (n, self.autoencoder.latent_dim, frames)
        noise = torch.randn(shape, generator=generator).to(self.device)
        if known is not None:
            keep = keep.to(self.device, noise.dtype)
            known = known.to(self.device, noise.dtype)
            on_step = self._repaint(known, keep, generator, on_step)
        if self.has_aligned and aligned_cond is None:
            aligned_cond = aligned_input(known, keep) if known is not None else nothing_known(noise)
        bar = tqdm(total=steps, desc=f"{description} ({sampler})", unit="step", disable=not progress)

        def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.sample_bf16):
                out = self.denoiser.guided(
                    x, t, batch, cfg_scale, cfg_rescale, negative=negative, aligned_cond=aligned_cond
                )
            return out.float()

        x0 = sample(
            denoise,
            noise,
            self.objective,
            sampler,
            steps,
            t_start=t_start,
            init=None if init is None else init.to(self.device),
            generator=generator,
            on_step=on_step,
            progress=lambda _: bar.update(1),
            **{k: self.defaults[k] for k in SCHEDULE_KEYS if k in self.defaults},
        )
        bar.close()
        return x0

    def _repaint(self, known, keep, generator, then=None):
        def on_step(x: torch.Tensor, t_next: float) -> torch.Tensor:
            x = replace_known(self.objective, x, known, keep, t_next, generator)
            return x if then is None else then(x, t_next)

        return on_step

    def sample_windows(self, *args, **kwargs) -> torch.Tensor:
        """Normalised latents (n, latent_dim, frames) of any length: :meth:`iter_windows` run to the end."""
        *_, (canvas, _) = self.iter_windows(*args, **kwargs)  # the last yield holds every frame
        return canvas

    def iter_windows(
        self,
        frames: int,
        n: int,
        seconds_total: float,
        prompt: str | None = None,
        label: str | int | None = None,
        negative: str | None = None,
        bpm: float | None = None,
        key: str | None = None,
        known: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
        init: torch.Tensor | None = None,
        t_start: float = 1.0,
        aligned_cond: torch.Tensor | None = None,
        frame_conditions: dict | None = None,
        item_conditions: dict | None = None,
        negative_frames: dict | None = None,
        seed: int = 0,
        progress: bool = False,
        **settings,
    ) -> Iterator[tuple[torch.Tensor, int]]:
        """Normalised latents (n, latent_dim, frames) of any length, a training window at a time:
        after each window, ``(canvas, settled)``, where frames before ``settled`` are final (no
        later window touches them); the last yield has ``settled == frames``.

        Windows of ``window_frames`` overlap by ``overlap_frames``; each window treats what is
        known (``keep`` = 1) as fixed and the frames the previous window made as softly known,
        with a weight falling linearly across the overlap, so the overlap is a crossfade in
        latent space between the two windows and there is no seam. Windows with every frame
        known are skipped. ``frame_conditions``: conditions given frame by frame, (n, frames, ...)
        tensors (speech's phoneme features), cut to each window; ``item_conditions``: more
        conditions of each item, the same in every window (a speech prompt's ``voice``);
        ``negative_frames``: frame conditions that replace those in guidance's negative branch
        (speech's null phonemes: guidance by the words alone, the voice the same in both).
        """
        generator = self.generator(seed)
        negative_batch = self.negative_conditions(n, negative)
        dim = self.autoencoder.latent_dim
        canvas = torch.zeros(n, dim, frames, device=self.device) if known is None else known.clone()
        fixed = torch.zeros(n, 1, frames, device=self.device) if keep is None else keep.expand(n, 1, frames)
        made = torch.zeros(frames, dtype=torch.bool)
        starts = self.window_starts(frames)
        for index, a in enumerate(starts):
            b = min(a + self.window_frames, frames)
            window_keep = fixed[..., a:b].clone()
            if bool((window_keep >= 1.0).all()):
                continue
            lead = int(torch.cumprod(made[a:b].long(), 0).sum())  # frames the previous window made
            ramp = crossfade_ramp(lead).to(self.device).view(1, 1, -1)
            window_keep[..., :lead] = torch.maximum(window_keep[..., :lead], ramp)
            batch = self.conditions(n, seconds_total, prompt, label, bpm, key)
            batch.update({name: value[:, a:b] for name, value in (frame_conditions or {}).items()})
            batch.update(item_conditions or {})
            batch["seconds_start"] = torch.full(
                (n,), a * self.autoencoder.hop / self.sample_rate, device=self.device
            )
            window_negative = negative_batch
            if negative_frames:
                cut = {name: value[:, a:b] for name, value in negative_frames.items()}
                window_negative = {**(negative_batch or {}), **cut}
            canvas[..., a:b] = self.sample_latents(
                b - a,
                batch,
                n,
                init=None if init is None else init[..., a:b],
                t_start=t_start,
                known=canvas[..., a:b] if window_keep.any() else None,
                keep=window_keep,
                aligned_cond=None if aligned_cond is None else aligned_cond[..., a:b],
                generator=generator,
                progress=progress,
                description=f"window {index + 1}/{len(starts)}" if len(starts) > 1 else "sampling",
                negative=window_negative,
                **settings,
            )
            made[a:b] = True
            if index + 1 < len(starts):
                yield canvas, starts[index + 1]
        yield canvas, frames

    def window_starts(self, frames: int) -> list[int]:
        if frames <= self.window_frames:
            return [0]
        step = self.window_frames - self.overlap_frames
        return list(range(0, frames - self.window_frames, step)) + [frames - self.window_frames]

    # ------------------------------------------------------------------ latents and audio
    @_reports_out_of_memory("decoding")
    def decode(self, x0: torch.Tensor, length: int | None = None, generated: bool = False) -> torch.Tensor:
        """Normalised latents to audio. ``generated``: latents sampled from noise, decoded as the VAE
        decodes a DiT's clips (`Autoencoder.generated_detail`); edits of a source keep its detail."""
        return self.autoencoder.decode(
            x0 * self.latent_std + self.latent_mean, length=length, as_generated=generated
        )

    def _out_of_memory(self, stage: str, n: int, frames: int) -> SamplingOutOfMemoryError:
        hop, rate = self.autoencoder.hop, self.sample_rate
        chunk_seconds = self.autoencoder.chunk_frames * hop / rate
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return SamplingOutOfMemoryError(
            f"out of memory on {self.device} while {stage} a batch of n={n} clips of {frames * hop / rate:.1f} s "
            f"({frames} latent frames); the VAE decodes in chunks of {chunk_seconds:.1f} s. Lower n= (the batch "
            "size: clips are independent, so several smaller runs give the same clips), lower seconds=, or "
            f"decode in smaller chunks: Pipeline.from_bundles(..., chunk_seconds={chunk_seconds / 2:g})"
        )

    def encode(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Normalised latents of ``audio`` (any rate and channel count)."""
        # the floor of DiTTraining.normalize: a silent channel must not divide by zero
        return (self.autoencoder.encode(audio, sample_rate) - self.latent_mean) / self.latent_std.clamp_min(
            1e-6
        )

    # ------------------------------------------------------------------ modes
    def generate(
        self,
        seconds: float | None = None,
        n: int = 1,
        prompt: str | None = None,
        label: str | int | None = None,
        negative: str | None = None,
        bpm: float | None = None,
        key: str | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        cfg_scale: float | None = None,
        cfg_rescale: float = 0.0,
        seed: int = 0,
        progress: bool = False,
    ) -> torch.Tensor:
        """``n`` clips of ``seconds`` (default: the training window) as (n, channels, samples).

        ``bpm`` and ``key`` ("A minor"): for a DiT trained with ``conditioning.tempo`` / ``key``.

        Longer than the training window: overlapping windows, crossfaded in latent space.
        ``negative``: a caption to steer away from (guidance then contrasts the two captions
        under the same timing and label); it needs ``cfg_scale`` != 1 and a text-conditioned DiT.
        """
        seconds = float(seconds or self.train_seconds)
        settings = dict(sampler=sampler, steps=steps, cfg_scale=cfg_scale, cfg_rescale=cfg_rescale)
        x0 = self.sample_windows(
            self.frames_for(seconds),
            n,
            seconds,
            prompt,
            label,
            negative=negative,
            bpm=bpm,
            key=key,
            seed=seed,
            progress=progress,
            **settings,
        )
        return self.decode(x0, length=round(seconds * self.sample_rate), generated=True)

    def stream(
        self, seconds: float | None = None, n: int = 1, context_frames: int = 8, **options
    ) -> Iterator[torch.Tensor]:
        """:meth:`generate`, returned piece by piece as its windows are sampled: audio
        (n, channels, samples) pieces whose concatenation is the clip, the first one after the
        first window, so playback can start before the clip is done. ``options`` as for
        :meth:`generate`. Each piece is decoded with ``context_frames`` latent frames of settled
        context on either side, so the joins match one whole decode closely, not bit for bit.
        """
        seconds = float(seconds or self.train_seconds)
        frames, length = self.frames_for(seconds), round(seconds * self.sample_rate)
        hop, margin = self.autoencoder.hop, int(context_frames)
        emitted = 0  # latent frames already sent as audio
        for canvas, settled in self.iter_windows(frames, n, seconds, **options):
            end = frames if settled >= frames else settled - margin  # keep right context back
            if end <= emitted:
                continue
            low = max(0, emitted - margin)
            audio = self.decode(canvas[..., low:settled], generated=True)  # (n, C, (settled - low) * hop)
            piece = audio[..., (emitted - low) * hop : (end - low) * hop]
            if end == frames:
                piece = piece[..., : length - emitted * hop]
            emitted = end
            yield piece

    # The editing modes take audio ``(C, T)`` or ``(B, C, T)`` at any rate and return
    # (B * n, channels, samples) at the model's rate. ``options``: n, prompt, label, negative,
    # bpm, key, seed, progress, sampler, steps, cfg_scale, cfg_rescale, as for ``generate``.

    def vary(self, audio: torch.Tensor, sample_rate: int, strength: float = 0.5, **options) -> torch.Tensor:
        """Audio to audio: the input's latents noised to t = ``strength`` (0: unchanged, 1: new)
        and sampled back (``steps`` spread over [strength, 0]); the input's duration."""
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength={strength}: it must be in (0, 1] (0 keeps the input, 1 ignores it)")
        return self._edit(audio, sample_rate, lambda x, length: editing.vary(x, length, strength), **options)

    def inpaint(
        self, audio: torch.Tensor, sample_rate: int, ranges: list[tuple[float, float]], **options
    ) -> torch.Tensor:
        """Regenerate the time ``ranges`` [(start_s, end_s), ...] of a clip and keep the rest.

        Every latent frame that touches a range is regenerated; the others come back equal to
        the latents of the input (so the kept audio is the VAE reconstruction, up to the
        decoder's receptive field at the boundaries).
        """

        def edit(latents: torch.Tensor, length: int) -> editing.Edit:
            keep = self.keep_mask(ranges, latents.shape[-1], length / self.sample_rate)
            return editing.inpaint(latents, length, keep)

        return self._edit(audio, sample_rate, edit, **options)

    def keep_mask(self, ranges: list[tuple[float, float]], frames: int, seconds: float) -> torch.Tensor:
        """(1, 1, frames): 0 on every frame that overlaps one of ``ranges`` (seconds), 1 elsewhere."""
        frame_seconds = self.autoencoder.hop / self.sample_rate
        return editing.keep_mask(ranges, frames, seconds, frame_seconds).to(self.device)

    def extend(self, audio: torch.Tensor, sample_rate: int, seconds: float, **options) -> torch.Tensor:
        """Continue a clip by ``seconds``: its latents are the known prefix, new frames follow.

        The clip is first cut to a whole number of latent frames (under one hop less), so the
        result starts with the reconstruction of that cut clip and runs ``seconds`` longer.
        """
        if seconds <= 0:
            raise ValueError(f"seconds={seconds}: the length to add must be positive")
        hop, added_frames = self.autoencoder.hop, self.frames_for(seconds)
        added_samples = round(seconds * self.sample_rate)

        def edit(latents: torch.Tensor, length: int) -> editing.Edit:
            return editing.extend(latents, length, hop, added_frames, added_samples)

        return self._edit(audio, sample_rate, edit, **options)

    def enhance(
        self, audio: torch.Tensor, sample_rate: int, strength: float = 0.3, **options
    ) -> torch.Tensor:
        """Clean up a degraded clip (noise, clipping).

        A DiT trained with ``aligned.task=enhance`` generates from noise with the degraded
        clip's latents as its aligned input (``strength`` is then unused). Any other model
        falls back to ``vary`` (SDEdit): the clip is noised to t = ``strength`` and denoised,
        which keeps its structure and pulls the details back towards what the model learned.
        """
        if self.aligned_task != "enhance":
            return self.vary(audio, sample_rate, strength, **options)
        return self._edit(audio, sample_rate, editing.enhance, **options)

    # ``text`` spoken in the voice of a prompt by a DiT trained with conditioning.phonemes: the
    # planning lives with the rest of speech (latentaudio/speech/synthesis.py)
    speak = synthesis.speak

    # pitch, tempo and speed: a transform, then optionally the model (latentaudio/retiming.py)
    pitch = retiming.pitch
    tempo = retiming.tempo
    speed = retiming.speed
    stretcher = retiming.stretcher
    latent_tempo = retiming.latent_tempo

    def _edit(
        self,
        audio: torch.Tensor,
        sample_rate: int,
        make_edit: Callable[[torch.Tensor, int], editing.Edit],
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        n: int = 1,
        prompt: str | None = None,
        label: str | int | None = None,
        negative: str | None = None,
        bpm: float | None = None,
        key: str | None = None,
        seed: int = 0,
        progress: bool = False,
        **settings,
    ) -> torch.Tensor:
        """The one editing routine: the input at the model's rate (``n`` copies of each clip, passed
        through ``transform`` if given), its normalised latents, the mode's
        ``make_edit(latents, samples)``, sampling, decoding."""
        prepared = self.autoencoder.prepare(audio, sample_rate)
        if transform is not None:
            prepared = transform(prepared)
        if prepared.shape[-1] < self.autoencoder.hop:
            raise ValueError(
                f"the input has {prepared.shape[-1]} samples at {self.sample_rate} Hz; "
                f"it needs at least one latent frame ({self.autoencoder.hop} samples)"
            )
        prepared = prepared.repeat_interleave(n, dim=0)
        latents = self.encode(prepared, self.sample_rate)
        edit = make_edit(latents, prepared.shape[-1])
        x0 = self.sample_windows(
            edit.frames,
            latents.shape[0],
            edit.length / self.sample_rate,
            prompt,
            label,
            negative=negative,
            bpm=bpm,
            key=key,
            known=edit.known,
            keep=None if edit.keep is None else edit.keep.to(self.device),
            init=edit.init,
            t_start=edit.t_start,
            aligned_cond=edit.aligned_cond,
            seed=seed,
            progress=progress,
            **settings,
        )
        return self.decode(x0, length=edit.length)
