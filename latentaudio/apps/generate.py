"""Generate or edit audio with trained bundles; writes each clip, its spectrogram and the settings used.

make generate ARGS="vae=<vae bundle> dit=<dit bundle> seconds=4 n=2 seed=0 output=outputs/clips"
make generate ARGS="vae=... dit=... prompt='warm pad' negative='distorted' cfg_scale=4"
make generate ARGS="vae=... dit=... label=pluck bpm=120 key='A minor'"     # a DiT with tempo and key
make generate ARGS="vae=... dit=... mode=vary input=take.wav strength=0.5"
make generate ARGS="vae=... dit=... mode=inpaint input=take.wav start=[1.0,3.0] end=[1.5,3.2]"
make generate ARGS="vae=... dit=... mode=extend input=take.wav seconds=8"
make generate ARGS="vae=... dit=... mode=enhance input=noisy.wav strength=0.3"
make generate ARGS="vae=... dit=... mode=pitch input=take.wav semitones=3"
make generate ARGS="vae=... dit=... mode=tempo input=take.wav rate=1.25 stretch=vocoder strength=0.2"
make generate ARGS="vae=... dit=... mode=speed input=take.wav rate=0.8"      # tape-style: slower, lower
make generate ARGS="vae=... dit=... lora=<adapter> lora_scale=0.8 label=marimba"   # with a LoRA adapter
make generate ARGS="vae=... dit=... lora=[a,b] lora_scale=[1.0,0.5]"              # two adapters
make generate ARGS="vae=... dit=... mode=speak text='The red fox sees four old boats.'"   # speech
make generate ARGS="vae=... dit=... mode=speak text='...' prompt=voice.wav prompt_text='What it says.'"
make generate ARGS="vae=... dit=... mode=speak text_file=sentences.txt"     # one sentence a line
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from latentaudio import retiming
from latentaudio.apps.common import CONFIG_PATH, ConfigError, adapters, as_list, log
from latentaudio.audio import audio_info, read_audio, write_audio
from latentaudio.devices import PRECISIONS
from latentaudio.training.media import spectrogram_image

MODES = ("generate", "vary", "inpaint", "extend", "enhance", "pitch", "tempo", "speed", "speak")
SIGNAL_MODES = ("pitch", "tempo", "speed")  # a transform first; strength 0 keeps it alone
EDITING_MODES = MODES[1:-1]


def inpaint_ranges(cfg: DictConfig, seconds: float | None = None) -> list[tuple[float, float]]:
    """``start=``/``end=`` (seconds, or lists of them) as [(start, end), ...], checked."""
    starts, ends = as_list(cfg.get("start")), as_list(cfg.get("end"))
    if not starts or len(starts) != len(ends):
        raise ConfigError(
            f"mode=inpaint needs start= and end= of the same length (seconds, or lists of them), "
            f"got start={starts} end={ends}"
        )
    ranges = list(zip(starts, ends, strict=True))
    for start, end in ranges:
        if not 0 <= start < end:
            raise ConfigError(f"inpaint range ({start}, {end}): need 0 <= start < end")
        if seconds is not None and end > seconds + 1e-9:
            raise ConfigError(f"inpaint range ({start}, {end}) ends after the input ({seconds:.3f} s)")
    return ranges


def check_generate_config(cfg: DictConfig) -> None:
    for key in ("vae", "dit"):
        if cfg.get(key) in (None, ""):
            raise ConfigError(
                f"{key}=<path> is required: the {key.upper()} bundle (the export/ folder of its training run)"
            )
    if cfg.mode not in MODES:
        raise ConfigError(f"mode={cfg.mode}: choose one of {', '.join(MODES)}")
    adapters(cfg)
    if cfg.n < 1:
        raise ConfigError(f"n={cfg.n}: ask for at least one clip")
    for key in ("decode_precision", "sample_precision"):
        if cfg.get(key) not in PRECISIONS:
            raise ConfigError(f"{key}={cfg.get(key)}: choose one of {', '.join(PRECISIONS)}")
    if cfg.seconds is not None and cfg.seconds <= 0:
        raise ConfigError(f"seconds={cfg.seconds}: must be positive")
    if cfg.mode in EDITING_MODES:
        if cfg.get("input") in (None, ""):
            raise ConfigError(f"mode={cfg.mode} edits a clip: give input=<audio file>")
        if not Path(cfg.input).is_file():
            raise ConfigError(f"input={cfg.input}: no such file")
        seconds = audio_info(cfg.input).seconds
        if cfg.mode == "inpaint":
            inpaint_ranges(cfg, seconds)
    if cfg.mode == "speak":
        check_speak(cfg)
    if cfg.mode == "extend" and cfg.seconds is None:
        raise ConfigError("mode=extend needs seconds=<length to add>")
    if cfg.mode in ("vary", "enhance") and cfg.strength is not None and not 0 < cfg.strength <= 1:
        raise ConfigError(f"strength={cfg.strength}: must be in (0, 1]")
    if cfg.mode in SIGNAL_MODES:
        check_signal_mode(cfg)


def check_speak(cfg: DictConfig) -> None:
    if bool(cfg.get("text")) == bool(cfg.get("text_file")):
        raise ConfigError(
            "mode=speak needs text='<a sentence>' or text_file=<a file, one sentence a line> (one of them)"
        )
    if cfg.get("text_file") and not Path(cfg.text_file).is_file():
        raise ConfigError(f"text_file={cfg.text_file}: no such file")
    if cfg.get("prompt") and not Path(cfg.prompt).is_file():
        raise ConfigError(
            f"mode=speak: prompt= is the voice recording to continue, and {cfg.prompt} is not a file"
        )
    if cfg.get("seconds") is not None and cfg.seconds <= 0:
        raise ConfigError(
            f"seconds={cfg.seconds}: give the speech's length in seconds (positive), or leave it out"
        )


def sentences(cfg: DictConfig) -> list[str]:
    """mode=speak: ``text``, or the non-empty lines of ``text_file``."""
    if cfg.get("text"):
        return [str(cfg.text)]
    lines = Path(cfg.text_file).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def check_signal_mode(cfg: DictConfig) -> None:
    if cfg.strength is not None and not 0 <= cfg.strength <= 1:
        raise ConfigError(f"strength={cfg.strength}: must be in [0, 1] (0: the transform alone)")
    if cfg.mode in ("pitch", "tempo") and cfg.get("stretch", "hybrid") not in retiming.STRETCHES:
        raise ConfigError(f"stretch={cfg.stretch}: {retiming.stretch_choices()}")
    if cfg.mode == "pitch":
        if cfg.get("semitones") is None or not -24 <= cfg.semitones <= 24:
            raise ConfigError(
                f"mode=pitch needs semitones=<shift> between -24 and 24, got {cfg.get('semitones')}"
            )
        return
    if cfg.get("rate") is None or not 0.25 <= cfg.rate <= 4:
        raise ConfigError(
            f"mode={cfg.mode} needs rate=<factor> between 0.25 and 4 (1.25: 25% faster), got {cfg.get('rate')}"
        )


def run_mode(pipeline, cfg: DictConfig):
    """The clips (n, channels, samples) of ``cfg.mode``, and the input at the model's rate (or None)."""
    common = dict(
        n=cfg.n,
        prompt=cfg.prompt,
        label=cfg.label,
        negative=cfg.negative,
        bpm=cfg.get("bpm"),
        key=cfg.get("key"),
        sampler=cfg.sampler,
        steps=cfg.steps,
        cfg_scale=cfg.cfg_scale,
        cfg_rescale=cfg.cfg_rescale,
        seed=cfg.seed,
        progress=True,
    )
    if cfg.mode == "generate":
        return pipeline.generate(seconds=cfg.seconds, **common), None
    if cfg.mode == "speak":
        return speak(pipeline, cfg, common), None
    audio, rate = read_audio(cfg.input)
    if cfg.strength is not None:  # else each mode's own default
        common["strength"] = cfg.strength
    if cfg.mode == "vary":
        out = pipeline.vary(audio, rate, **common)
    elif cfg.mode == "enhance":
        out = pipeline.enhance(audio, rate, **common)
    elif cfg.mode == "pitch":
        out = pipeline.pitch(audio, rate, semitones=cfg.semitones, stretch=cfg.stretch, **common)
    elif cfg.mode == "tempo":
        out = pipeline.tempo(audio, rate, rate=cfg.rate, stretch=cfg.stretch, **common)
    elif cfg.mode == "speed":
        out = pipeline.speed(audio, rate, rate=cfg.rate, **common)
    elif cfg.mode == "inpaint":
        out = pipeline.inpaint(audio, rate, ranges=inpaint_ranges(cfg), **common)
    else:
        out = pipeline.extend(audio, rate, seconds=cfg.seconds, **common)
    return out, pipeline.autoencoder.prepare(audio, rate)[0]


def speak(pipeline, cfg: DictConfig, common: dict) -> list:
    """mode=speak: ``n`` clips per sentence, in order (a list: sentences differ in length)."""
    for unused in ("label", "negative", "bpm", "key"):
        common.pop(unused)
    voice, rate = read_audio(cfg.prompt) if cfg.get("prompt") else (None, None)
    common.pop("prompt")
    clips = []
    for text in sentences(cfg):
        spoken = pipeline.speak(
            text, voice, rate, prompt_text=cfg.get("prompt_text"), seconds=cfg.seconds, **common
        )
        clips.extend(spoken)
    return clips


def generate(cfg: DictConfig) -> list[Path]:
    from latentaudio.pipeline import Pipeline

    check_generate_config(cfg)
    pairs = adapters(cfg)
    pipeline = Pipeline.from_bundles(
        cfg.vae,
        cfg.dit,
        cfg.device,
        lora=[p for p, _ in pairs],
        lora_scale=[s for _, s in pairs],
        decode_precision=cfg.decode_precision,
        sample_precision=cfg.sample_precision,
        text_path=cfg.get("text_path"),
        decode_detail=cfg.get("decode_detail"),
    )
    audio, source = run_mode(pipeline, cfg)
    output = Path(cfg.output)
    written = []
    for i, clip in enumerate(audio):
        path = write_audio(output / f"clip{i:02d}.wav", clip, pipeline.sample_rate)
        spectrogram_image(clip, pipeline.sample_rate, path.with_suffix(".png"), title=path.name)
        written.append(path)
    if source is not None:  # the input at the model's rate, to compare with
        path = write_audio(output / "input.wav", source, pipeline.sample_rate)
        spectrogram_image(source, pipeline.sample_rate, path.with_suffix(".png"), title=path.name)
    settings = {
        **OmegaConf.to_container(cfg, resolve=True),
        "sample_rate": pipeline.sample_rate,
        "resolved": {
            k: pipeline.defaults[k] if cfg.get(k) is None else cfg[k]
            for k in ("sampler", "steps", "cfg_scale")
        },
        "aligned_task": pipeline.aligned_task,
        "vae_hash": pipeline.autoencoder.hash,
        "dit_hash": pipeline.bundle.hash,
        "adapters": pipeline.adapters,
    }
    settings.pop("paths", None)
    (output / "settings.json").write_text(json.dumps(settings, indent=2))
    seconds = sum(clip.shape[-1] for clip in audio) / len(written) / pipeline.sample_rate
    log.info("wrote %d clips of %.2f s (mean) to %s", len(written), seconds, output)
    return written


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="generate")
def main(cfg: DictConfig) -> None:
    generate(cfg)


if __name__ == "__main__":
    main()
