"""Evaluate a VAE bundle (and optionally a DiT bundle) on a folder of audio, or one file.

make evaluate ARGS="vae=outputs/demo/vae/export data.root=data/demo output=outputs/eval"
make reconstruct ARGS="vae=outputs/demo/vae/export data.root=data/demo limit=20"  # + the .wav files
make evaluate ARGS="vae=... dit=outputs/demo/dit/export data.root=data/demo limit=32 embedding=vggish.pt trust_embedding=true"

Writes ``metrics.json`` (per file, means, generation metrics), prints a table and saves
``metric_distributions.png`` and ``spectrograms.png`` in ``output``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from latentaudio import adherence, evaluation
from latentaudio.apps.common import CONFIG_PATH, ConfigError, log
from latentaudio.data.metadata import load_metadata
from latentaudio.data.scan import printable, scan_audio_folder
from latentaudio.data.split import held_out_files
from latentaudio.training.media import draw_spectrogram

LABELS = {"mrstft": "MR-STFT", "mel": "mel", "sisdr": "SI-SDR (dB)"}


def check_evaluate_config(cfg: DictConfig) -> None:
    if cfg.limit is not None and cfg.limit < 1:
        raise ConfigError(f"limit={cfg.limit}: evaluate at least one file (null: all)")
    if cfg.dit and cfg.generation.n is not None and cfg.generation.n < 2:
        raise ConfigError(f"generation.n={cfg.generation.n}: distribution metrics need at least 2 clips")
    if cfg.split not in ("all", "held_out"):
        raise ConfigError(
            f"split={cfg.split!r}: all (every file under data.root) or held_out (the files a training "
            "run with these data.val_fraction and data.split_seed held out)"
        )


def evaluation_paths(cfg: DictConfig, root: Path) -> list[str]:
    """The files to evaluate, relative to ``root``: all, or the held-out split; then ``limit``."""
    if cfg.split == "held_out":
        paths = held_out_files(root, cfg.data.val_fraction, cfg.data.split_seed)
    else:
        paths = [f.path for f in scan_audio_folder(root, progress=False).files]
    return paths[: cfg.limit or None]


def evaluate(cfg: DictConfig) -> dict:
    """Returns the summary written to ``<output>/metrics.json``."""
    from latentaudio.autoencoder import Autoencoder
    from latentaudio.bundle import load_bundle
    from latentaudio.pipeline import Pipeline

    check_evaluate_config(cfg)
    torch.manual_seed(cfg.seed)
    embedding = (
        evaluation.EmbeddingModel(cfg.embedding, cfg.embedding_rate, trusted=cfg.trust_embedding)
        if cfg.embedding
        else None
    )
    autoencoder = Autoencoder.from_bundle(cfg.vae, device=cfg.device, chunk_seconds=cfg.chunk_seconds)
    pipeline = (
        Pipeline(
            autoencoder,
            load_bundle(cfg.dit, kind="dit"),
            cfg.device,
            decode_detail=cfg.generation.get("decode_detail"),
        )
        if cfg.dit
        else None
    )
    output = Path(cfg.output)
    root = Path(cfg.data.root)
    if root.is_file():
        root, paths = root.parent, [root.name]
    else:
        paths = evaluation_paths(cfg, root)

    per_file: dict[str, dict[str, float]] = {}
    examples: list[evaluation.FileReconstruction] = []
    real: list[torch.Tensor] = []
    reconstructed: list[torch.Tensor] = []
    max_samples = round((cfg.generation.max_seconds or math.inf) * autoencoder.sample_rate)
    results = evaluation.reconstruct_files(
        autoencoder,
        root,
        paths,
        write_to=output / "reconstructions" if cfg.write_reconstructions else None,
        warn=lambda path, reason: log.warning("skipping %s: %s", printable(root / path), reason),
    )
    for item in tqdm(results, total=len(paths), desc="reconstructing", unit="file"):
        per_file[item.path] = item.metrics
        real.append(item.reference[:, : int(min(max_samples, item.reference.shape[-1]))])
        reconstructed.append(item.decoded[:, : real[-1].shape[-1]])
        if len(examples) < cfg.plot_examples:
            examples.append(item)
    if not per_file:
        raise SystemExit(f"no decodable audio in {root}")
    summary: dict = {
        "vae": str(cfg.vae),
        "vae_hash": autoencoder.hash,
        "data_root": str(root),
        "sample_rate": autoencoder.sample_rate,
        "latent_rate": evaluation.latent_rate(autoencoder),
        "count": len(per_file),
        "mean": evaluation.mean_metrics(per_file, evaluation.RECONSTRUCTION_METRICS),
        "split": cfg.split,
        "per_label": evaluation.metrics_by_group(
            per_file,
            {path: row.get("label", "") for path, row in load_metadata(root, list(per_file)).items()},
            evaluation.RECONSTRUCTION_METRICS,
        ),
        "extremes": evaluation.extremes(per_file),
        "files": per_file,
        "generation": None,
    }

    generated = None
    if pipeline is not None and pipeline.denoiser.conditioner.phonemes is not None:
        summary["dit"], summary["dit_hash"] = str(cfg.dit), pipeline.bundle.hash
        summary["speech"] = measure_speech(cfg, pipeline, root, embedding)
    elif pipeline is not None:
        if len(real) < 2:
            raise SystemExit("generation metrics need at least 2 real clips in data.root")
        durations = [clip.shape[-1] / autoencoder.sample_rate for clip in real]
        n = cfg.generation.n or len(durations)
        g = cfg.generation
        generated = evaluation.generate_like(
            pipeline,
            [durations[i % len(durations)] for i in range(n)],
            steps=g.steps,
            sampler=g.sampler,
            cfg_scale=g.cfg_scale,
            seed=cfg.seed,
            batch_size=g.batch_size,
        )
        summary["dit"] = str(cfg.dit)
        summary["dit_hash"] = pipeline.bundle.hash
        summary["generation"] = evaluation.generation_metrics(
            real, autoencoder.sample_rate, generated, embedding
        )
        summary["generation"]["steps"] = int(g.steps or pipeline.defaults["steps"])
        if not autoencoder.generated_detail:  # the floor a DiT can reach: decoded as its clips are
            with torch.inference_mode():
                reconstructed = [autoencoder.reconstruct(clip[None], as_generated=True)[0] for clip in real]
        summary["floors"] = adherence.distance_floors(
            real, reconstructed, generated.clips, autoencoder.sample_rate
        )
        if cfg.adherence.enabled:
            summary["adherence"] = measure_adherence(cfg, pipeline, root, output)
    else:
        if embedding is not None:
            log.warning("embedding= only adds a generation metric: pass dit= as well")
        if cfg.adherence.enabled and cfg.data.root and Path(cfg.data.root).is_dir():
            summary["labels_through_vae"] = measure_vae_labels(cfg, autoencoder, root)

    output.mkdir(parents=True, exist_ok=True)
    (output / "metrics.json").write_text(json.dumps(_json_safe(summary), indent=2))
    print(format_table(summary))
    if cfg.plots:
        plot_distributions(per_file, output / "metric_distributions.png")
        if generated is not None:
            columns = [("real", c) for c in real[: cfg.plot_examples]]
            rows = [columns, [("generated", c) for c in generated.clips[: cfg.plot_examples]]]
        else:
            rows = [
                [("real", e.reference) for e in examples],
                [("reconstructed", e.decoded) for e in examples],
            ]
        plot_spectrogram_grid(rows, autoencoder.sample_rate, output / "spectrograms.png")
    log.info("metrics.json and plots in %s", output)
    return summary


def measure_speech(cfg: DictConfig, pipeline, root: Path, embedding) -> dict:
    """A speech DiT on a held-out folder of sentences in several voices (latentaudio.speech.evaluation)."""
    from latentaudio.speech.evaluation import evaluate_pipeline

    s = cfg.speech
    settings = {key: s[key] for key in ("steps", "cfg_scale") if s.get(key) is not None}
    voices = list(s.voices) if s.get("voices") else None
    try:
        result = evaluate_pipeline(
            pipeline,
            root,
            sentences=s.get("sentences"),
            voices=voices,
            embedding=embedding,
            seed=cfg.seed,
            **settings,
        )
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(
            f"speech evaluation of {printable(root)}: {error}. data.root must be a held-out folder with "
            "metadata.csv (path, text, speaker), each sentence in at least two voices, as "
            "data/demo-speech/heldout from make demo-speech-data"
        ) from error
    result.pop("clips")
    return result


def labelled_real_clips(cfg: DictConfig, root: Path, sample_rate: int, channels: int):
    """The folder's real clips for the label judge and the ceilings (``adherence.max_files``),
    or ``None`` when its metadata has no label or caption."""
    paths = [f.path for f in scan_audio_folder(root, progress=False).files][: cfg.adherence.max_files]
    rows = load_metadata(root, paths)
    if not any(row.get("label") or row.get("caption") for row in rows.values()):
        return None
    max_seconds = cfg.generation.max_seconds or None
    return adherence.read_real_clips(root, sample_rate, channels, paths, max_seconds, progress=True)


def measure_vae_labels(cfg: DictConfig, autoencoder, root: Path) -> dict | None:
    """Without a DiT: can the label judge still tell the labels apart through this VAE?"""
    real = labelled_real_clips(cfg, root, autoencoder.sample_rate, autoencoder.channels)
    return None if real is None else adherence.labels_through_vae(autoencoder, real)


def measure_adherence(cfg: DictConfig, pipeline, root: Path, output: Path) -> dict | None:
    """Label, caption and timing adherence of the DiT on what the folder's metadata asks for."""
    a, g = cfg.adherence, cfg.generation
    real = labelled_real_clips(cfg, root, pipeline.sample_rate, pipeline.autoencoder.channels)
    if real is None:
        log.warning("no label or caption in the metadata of %s: no adherence metrics", printable(root))
        return None
    settings = dict(sampler=g.sampler, steps=g.steps, cfg_scale=g.cfg_scale)
    result = adherence.measure_adherence(
        pipeline, real, a.per_label, a.captions, seed=cfg.seed, progress=True, **settings
    )
    if cfg.plots and "labels" in result:
        output.mkdir(parents=True, exist_ok=True)
        labels = result["labels"]
        adherence.plot_confusion(labels["confusion"], labels["order"], output / "label_confusion.png")
    return result


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def format_table(summary: dict) -> str:
    """The per-file table, the means and the generation metrics as plain text."""
    files = summary["files"]
    width = max(12, *(len(p) for p in files))
    lines = [f"{'file':<{width}}  {'MR-STFT':>8}  {'mel':>7}  {'SI-SDR':>7}"]
    for path, r in files.items():
        lines.append(f"{path:<{width}}  {r['mrstft']:8.3f}  {r['mel']:7.3f}  {r['sisdr']:7.2f}")
    m = summary["mean"]
    lines.append(
        f"{'mean (' + str(summary['count']) + ')':<{width}}  {m['mrstft']:8.3f}  {m['mel']:7.3f}  {m['sisdr']:7.2f}"
    )
    if summary.get("per_label"):
        lines.append("per label:")
        for label, r in summary["per_label"].items():
            name = f"  {label} ({r['files']})"
            lines.append(
                f"{name:<{width}}  {r['mrstft']:8.3f}  {r['mel']:7.3f}  {r['sisdr']:7.2f}"
                f"  (worst {r['worst_sisdr']:.2f})"
            )
    ends = summary.get("extremes")
    if ends:
        for side in ("worst", "best"):
            listed = ", ".join(f"{path} {value:.2f}" for path, value in ends[side])
            lines.append(f"{side} SI-SDR: {listed}")
    lines.append(f"latent rate: {summary['latent_rate']:.0f} values/s")
    if summary.get("generation"):
        lines.append("generation:")
        for name, value in summary["generation"].items():
            lines.append(f"  {name:<24} {value:12.4f}")
    if summary.get("floors"):
        lines.append("distances to half the real clips, at equal set sizes (real: the floor):")
        floors = summary["floors"]
        names = list(next(iter(floors.values())))
        lines.append(f"  {'':<14}" + "".join(f"{n:>14}" for n in names))
        for set_name, values in floors.items():
            lines.append(f"  {set_name:<14}" + "".join(f"{values[n]:14.4f}" for n in names))
    through_vae = summary.get("labels_through_vae")
    if through_vae:
        per_label = ", ".join(f"{k} {v:.0%}" for k, v in through_vae["vae_ceiling_per_label"].items())
        lines.append(
            f"label judge on the VAE's reconstructions: {through_vae['vae_ceiling']:.1%} ({per_label}); "
            f"on the real clips: {through_vae['ceiling']:.1%} ({through_vae['held_out_real_clips']} held-out clips)"
        )
    if summary.get("adherence"):
        lines += format_adherence(summary["adherence"])
    if summary.get("speech"):
        lines += format_speech(summary["speech"])
    return "\n".join(lines)


SPEECH_FIGURES = (
    ("which_sentence_accuracy", "which sentence"),
    ("mcd_same_sentence", "MCD same sentence (dB)"),
    ("mcd_other_sentence", "MCD other sentences (dB)"),
    ("speaker_similarity_prompt", "voice: prompt's"),
    ("speaker_similarity_other_voices", "voice: other voices'"),
    ("speaker_accuracy", "prompt's voice nearest"),
)


def format_speech(result: dict) -> list[str]:
    """Each speech figure for prompted and unprompted speech, the VAE's reconstructions and real speech."""
    columns = [
        (name, result[key])
        for key, name in (
            ("generated", "prompted"),
            ("unprompted", "unprompted"),
            ("vae", "VAE"),
            ("ceiling", "real"),
        )
        if key in result
    ]
    lines = [
        f"speech ({result['sentences']} sentences x {len(result['voices'])} voices; chance "
        f"{result['which_sentence_chance']:.0%} and {result['speaker_chance']:.0%}):"
    ]
    lines.append(f"  {'':<26}" + "".join(f"{name:>12}" for name, _ in columns))
    for key, name in SPEECH_FIGURES:
        lines.append(f"  {name:<26}" + "".join(f"{figures[key]:12.3f}" for _, figures in columns))
    return lines


def format_adherence(result: dict) -> list[str]:
    """Each adherence figure beside its real-data ceiling."""
    lines = ["adherence (generated | real-data ceiling):"]
    if "labels" in result:
        labels = result["labels"]
        lines.append(
            f"  label accuracy           {labels['accuracy']:6.1%} | {labels['ceiling']:6.1%}"
            f" (VAE reconstructions: {labels['vae_ceiling']:.1%})"
        )
        for label, value in labels["per_label"].items():
            lines.append(f"    {label:<22} {value:6.1%}")
        generated = result["per_label_distances"]["generated"]
        real = result["per_label_distances"]["real"]
        lines.append("  per-label FD (MFCC) to the same label / to the others:")
        for label, values in generated.items():
            ceiling = real.get(label, {})
            lines.append(
                f"    {label:<22} {values['fd_same']:8.2f} / {values['fd_other']:8.2f} | "
                f"{ceiling.get('fd_same', float('nan')):8.2f} / {ceiling.get('fd_other', float('nan')):8.2f}"
            )
    if "captions" in result:
        generated, real = result["captions"]["generated"], result["captions"]["real"]
        asked_by = ", ".join(result["captions"].get("asked_by") or ["caption"])
        lines.append(f"  asked by each row's {asked_by}:")
        for name, title in (
            ("tempo_exact", "tempo within 4%"),
            ("tempo_octave", "tempo off by an octave"),
            ("key_accuracy", "key (tonic and mode)"),
            ("tonic_accuracy", "tonic"),
        ):
            if name in generated:
                through_vae = (result["captions"].get("vae") or {}).get(name)
                vae = "" if through_vae is None else f" (VAE reconstructions: {through_vae:.1%})"
                lines.append(f"  {title:<24} {generated[name]:6.1%} | {real[name]:6.1%}{vae}")
        if "label_accuracy" in result["captions"]:
            text = result["captions"]
            lines.append(
                f"  label accuracy           {text['label_accuracy']:6.1%} | {text['label_ceiling']:6.1%}"
            )
    timing = result["timing"]
    lines.append(
        f"  timing error (audible)   {timing['generated']['mean_abs_error_s']:6.3f} s | "
        f"{timing['real']['mean_abs_error_s']:6.3f} s; within 0.25 s: {timing['generated']['within_0.25s']:6.1%}"
    )
    return lines


def plot_distributions(per_file: dict[str, dict[str, float]], path: Path) -> Path:
    """One histogram per reconstruction metric over the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = evaluation.RECONSTRUCTION_METRICS
    figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3), dpi=100)
    for axis, name in zip(axes, names):
        values = [r[name] for r in per_file.values()]
        axis.hist(values, bins=min(20, max(3, len(values))), color="tab:blue", alpha=0.8)
        axis.set_title(f"{LABELS[name]}  mean {sum(values) / len(values):.3g}", fontsize=9)
        axis.set_ylabel("files")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_spectrogram_grid(rows: list[list[tuple[str, torch.Tensor]]], sample_rate: int, path: Path) -> Path:
    """Log-magnitude spectrograms, one row per set (real, generated or reconstructed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(1, max(len(r) for r in rows))
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(3 * columns, 2.2 * len(rows)), dpi=100, squeeze=False
    )
    for r, row in enumerate(rows):
        for c in range(columns):
            axis = axes[r][c]
            if c >= len(row):
                axis.axis("off")
                continue
            name, clip = row[c]
            draw_spectrogram(axis, clip, sample_rate)
            axis.set_title(f"{name} {c}", fontsize=8)
            axis.set_xlabel("s", fontsize=7)
            axis.set_ylabel("kHz", fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
