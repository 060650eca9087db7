"""Adherence: does a generated clip follow what it was asked? (pure torch and scikit-learn)

Every measure here comes with its real-data ceiling: the same estimator run on real clips whose
answer is known. A model can only be judged against what the estimator itself gets right.

- :class:`LabelJudge`: a classifier trained on the data's own real clips and ``label`` column
  (scaled mel-statistics and MFCC features, logistic regression); its accuracy on held-out
  real clips is the ceiling for generated clips asked for each label, and its accuracy on the
  VAE's reconstructions of them the ceiling of any DiT on that VAE.
- :func:`per_label_distances`: distances of clips generated for label L to real clips of L and
  to real clips of the other labels (a model that ignores labels has both equal).
- :func:`attribute_adherence` checks the tempo and key that metadata asks for
  (``latentaudio.data.metadata.caption_attributes``) with the estimators of
  ``latentaudio.estimators``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from latentaudio import metrics
from latentaudio.data.metadata import caption_attributes
from latentaudio.estimators import estimate_key, estimate_tempo, tempo_matches

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------


def label_features(clips: Sequence[torch.Tensor], sample_rate: int) -> np.ndarray:
    """(N, F) features a label classifier sees: mel statistics and MFCC statistics side by side."""
    mel = metrics.mel_statistics_features(clips, sample_rate)
    mfcc = metrics.mfcc_features(clips, sample_rate)
    return torch.cat([mel, mfcc], dim=1).double().numpy()


@dataclass
class LabelJudge:
    """A classifier of the data's own labels, with its accuracy on held-out real clips (the ceiling)."""

    labels: list[str]
    model: object  # a fitted scikit-learn pipeline
    ceiling: float  # accuracy on held-out real clips
    held_out: int  # how many held-out real clips the ceiling was measured on

    @classmethod
    def fit(
        cls,
        train: Sequence[torch.Tensor],
        train_labels: Sequence[str],
        held_out: Sequence[torch.Tensor],
        held_out_labels: Sequence[str],
        sample_rate: int,
    ) -> LabelJudge:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        known = sorted(set(train_labels))
        if len(known) < 2:
            raise ValueError(
                f"a label classifier needs at least two labels among the real clips, got {known}"
            )
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
        model.fit(label_features(train, sample_rate), list(train_labels))
        judge = cls(known, model, float("nan"), len(held_out))
        if held_out:
            judge.ceiling = judge.judge(held_out, held_out_labels, sample_rate)["accuracy"]
        return judge

    def predict(self, clips: Sequence[torch.Tensor], sample_rate: int) -> list[str]:
        return [str(label) for label in self.model.predict(label_features(clips, sample_rate))]

    def judge(self, clips: Sequence[torch.Tensor], asked: Sequence[str], sample_rate: int) -> dict:
        """Overall and per-label accuracy of ``clips`` against the ``asked`` labels, and the
        confusion matrix (rows: asked, columns: predicted, in the order of ``self.labels``)."""
        predicted = self.predict(clips, sample_rate)
        index = {label: i for i, label in enumerate(self.labels)}
        confusion = [[0] * len(self.labels) for _ in self.labels]
        for a, p in zip(asked, predicted):
            if a in index:
                confusion[index[a]][index[p]] += 1
        per_label = {
            label: confusion[i][i] / max(1, sum(confusion[i]))
            for i, label in enumerate(self.labels)
            if sum(confusion[i])
        }
        correct = sum(a == p for a, p in zip(asked, predicted))
        return {
            "accuracy": correct / max(1, len(asked)),
            "per_label": per_label,
            "confusion": confusion,
            "predicted": predicted,
        }


def per_label_distances(
    real: Mapping[str, Sequence[torch.Tensor]],
    generated: Mapping[str, Sequence[torch.Tensor]],
    sample_rate: int,
) -> dict[str, dict[str, float]]:
    """For each label L with clips in both sets: ``same`` = distance of the clips generated for L
    to real clips of L, ``other`` = to the real clips of every other label, both Frechet distances
    on MFCC statistics (``fd_*``) and unbiased kernel distances (``kd_*``)."""
    features = {
        name: metrics.mfcc_features(list(clips), sample_rate)
        for name, clips in real.items()
        if len(clips) > 1
    }
    out: dict[str, dict[str, float]] = {}
    for label, clips in generated.items():
        if label not in features or len(clips) < 2:
            continue
        mine = metrics.mfcc_features(list(clips), sample_rate)
        others = [f for name, f in features.items() if name != label]
        if not others:
            continue
        other = torch.cat(others)
        out[label] = {
            "fd_same": metrics.frechet_distance(mine, features[label]),
            "fd_other": metrics.frechet_distance(mine, other),
            "kd_same": metrics.kernel_distance(mine, features[label]),
            "kd_other": metrics.kernel_distance(mine, other),
        }
    return out


def attribute_adherence(clips: Sequence[torch.Tensor], asked: Sequence[Mapping], sample_rate: int) -> dict:
    """Tempo and key of each clip against its asked attributes (:func:`caption_attributes`).

    ``tempo_exact``: fraction within 4% of the asked tempo; ``tempo_octave``: within 4% of half
    or double it (reported apart, not counted as right); ``key_accuracy``: exact tonic and
    mode; ``tonic_accuracy``: the tonic alone. Each over the clips whose metadata asks for it.
    """
    tempo = {"exact": 0, "octave": 0, "wrong": 0}
    key_right = tonic_right = key_count = 0
    for clip, attributes in zip(clips, asked):
        if "bpm" in attributes:
            tempo[tempo_matches(estimate_tempo(clip, sample_rate), attributes["bpm"])] += 1
        if "key" in attributes:
            found = estimate_key(clip, sample_rate)
            key_count += 1
            key_right += found == attributes["key"]
            tonic_right += found.split(" ")[0] == attributes["key"].split(" ")[0]
    tempo_count = sum(tempo.values())
    out: dict = {"tempo_clips": tempo_count, "key_clips": key_count}
    if tempo_count:
        out["tempo_exact"] = tempo["exact"] / tempo_count
        out["tempo_octave"] = tempo["octave"] / tempo_count
    if key_count:
        out["key_accuracy"] = key_right / key_count
        out["tonic_accuracy"] = tonic_right / key_count
    return out


# --------------------------------------------------------------------------------------
# Measuring a pipeline on a folder with metadata
# --------------------------------------------------------------------------------------


@dataclass
class RealClips:
    """Real clips of a folder with their metadata rows, in one order."""

    paths: list[str]
    clips: list[torch.Tensor]  # each (C, T) at sample_rate
    rows: list[dict]
    sample_rate: int

    def by_label(self, indices: Sequence[int] | None = None) -> dict[str, list[torch.Tensor]]:
        out: dict[str, list[torch.Tensor]] = {}
        for i in range(len(self.paths)) if indices is None else indices:
            label = str(self.rows[i].get("label") or "")
            if label:
                out.setdefault(label, []).append(self.clips[i])
        return out


def read_real_clips(
    root: Path,
    sample_rate: int,
    channels: int = 1,
    paths: Sequence[str] | None = None,
    max_seconds: float | None = None,
    progress: bool = False,
) -> RealClips:
    """The audio files of ``root`` (or ``paths`` under it) with their metadata rows, at
    ``sample_rate``, each cut to ``max_seconds``. A file that does not decode is skipped with
    one warning naming it."""
    from tqdm import tqdm

    from latentaudio.audio import AudioDecodeError, read_audio
    from latentaudio.data.metadata import load_metadata
    from latentaudio.data.scan import printable, scan_audio_folder

    root = Path(root)
    if paths is None:
        paths = [f.path for f in scan_audio_folder(root, progress=False).files]
    rows = load_metadata(root, list(paths))
    max_samples = None if max_seconds is None else round(max_seconds * sample_rate)
    kept, clips = [], []
    for path in tqdm(paths, desc="reading real clips", unit="file", disable=not progress):
        try:
            audio, _ = read_audio(root / path, sample_rate=sample_rate, channels=channels)
        except AudioDecodeError as error:
            log.warning("skipping %s: %s", printable(root / path), error.reason)
            continue
        clips.append(audio[:, :max_samples])
        kept.append(path)
    return RealClips(kept, clips, [rows.get(p, {}) for p in kept], sample_rate)


def judge_split(paths: Sequence[str], fraction: float = 0.25, seed: int = 1) -> tuple[list[int], list[int]]:
    """Indices of the clips the label judge trains on and of those it is scored on (its ceiling):
    a hash split of the paths, so the judge is the same whatever subset of a folder is used."""
    from latentaudio.data.split import split

    _, held_paths = split(paths, fraction, seed)
    chosen = set(held_paths)
    held = [i for i, p in enumerate(paths) if p in chosen]
    return [i for i, p in enumerate(paths) if p not in chosen], held


def fit_judge(real: RealClips) -> tuple[LabelJudge | None, list[int], list[int]]:
    """A :class:`LabelJudge` fitted on ``real``'s judge split (:func:`judge_split`), with the
    indices it trained on and those it was scored on; ``None`` when the folder has fewer than
    two labels or no held-out clip."""
    train, held = judge_split(real.paths)
    if len(real.by_label()) < 2 or not held:
        return None, train, held
    labels = [str(row.get("label") or "") for row in real.rows]
    judge = LabelJudge.fit(
        [real.clips[i] for i in train],
        [labels[i] for i in train],
        [real.clips[i] for i in held],
        [labels[i] for i in held],
        real.sample_rate,
    )
    return judge, train, held


def labels_through_vae(autoencoder, real: RealClips, fitted: tuple | None = None) -> dict | None:
    """The label judge on the VAE's reconstructions of its held-out real clips, beside its accuracy
    on those clips themselves: what a perfect DiT on this VAE could reach, per label. A VAE that
    keeps a label's timbre leaves both equal. ``fitted``: :func:`fit_judge`'s answer for ``real``,
    when the caller has it already. ``None`` without labels."""
    judge, _, held = fitted or fit_judge(real)
    if judge is None:
        return None
    with torch.inference_mode():
        clips = [
            autoencoder.reconstruct(real.clips[i][None], real.sample_rate, as_generated=True)[0].cpu()
            for i in held
        ]
    verdict = judge.judge(clips, [str(real.rows[i].get("label") or "") for i in held], real.sample_rate)
    return {
        "ceiling": judge.ceiling,
        "vae_ceiling": verdict["accuracy"],
        "vae_ceiling_per_label": verdict["per_label"],
        "order": judge.labels,
        "confusion": verdict["confusion"],
        "held_out_real_clips": judge.held_out,
    }


def timing_adherence(clips: Sequence[torch.Tensor], asked: Sequence[float], sample_rate: int) -> dict:
    """Audible duration (:func:`latentaudio.evaluation.audible_seconds`) against the asked one."""
    from latentaudio.evaluation import audible_seconds

    errors = [abs(audible_seconds(c, sample_rate) - s) for c, s in zip(clips, asked)]
    return {
        "clips": len(errors),
        "mean_abs_error_s": sum(errors) / max(1, len(errors)),
        "within_0.25s": sum(e <= 0.25 for e in errors) / max(1, len(errors)),
    }


def row_conditions(pipeline, conditioning: Mapping, row: Mapping[str, str]) -> dict:
    """What a metadata row asks of a DiT, in the conditions it was trained with: its caption
    (text), tempo and key (as numbers); its label too when the DiT has no text to name it."""
    attributes = caption_attributes(row)
    ask: dict = {}
    if conditioning.get("text"):
        ask["prompt"] = str(row.get("caption") or "")
    elif str(row.get("label") or "") in pipeline.labels:
        ask["label"] = str(row["label"])
    if conditioning.get("tempo") and "bpm" in attributes:
        ask["bpm"] = attributes["bpm"]
    if conditioning.get("key") and "key" in attributes:
        ask["key"] = attributes["key"]
    return ask


def measure_adherence(
    pipeline,
    real: RealClips,
    per_label: int = 8,
    captions: int = 40,
    seed: int = 0,
    progress: bool = False,
    **settings,
) -> dict:
    """Generate with ``pipeline`` what ``real``'s metadata asks for and measure how well it follows.

    - labels (a DiT with labels, a folder with a ``label`` column): ``per_label`` clips per label
      known to both; accuracy by a :class:`LabelJudge` fitted on the folder's real clips, beside
      its accuracy on held-out real clips; per-label distances beside those of real clips.
    - captions (a DiT with text, tempo or key conditions): one clip per row of up to
      ``captions`` rows, asked for what the row says in the conditions the DiT has
      (:func:`row_conditions`); tempo and key (:func:`attribute_adherence`) beside the same
      estimators on the real clips of those rows, and label accuracy of those clips.
    - timing: clips asked for half, three quarters and all of the training window; the audible
      duration against the asked one.
    ``settings``: sampler, steps, cfg_scale (the bundle's defaults where absent).
    """
    from tqdm import tqdm

    rate = real.sample_rate
    window = float(pipeline.train_seconds)
    real_by_label = real.by_label()
    labels_known = [label for label in pipeline.labels if label in real_by_label]
    conditioning = pipeline.bundle.meta.get("conditioning") or {}
    has_text = bool(conditioning.get("text"))
    # a DiT that can be asked for a tempo or a key: by caption (text) or as numbers (tempo, key)
    has_attributes = has_text or bool(conditioning.get("tempo")) or bool(conditioning.get("key"))
    judge, train, held = fit_judge(real)
    out: dict = {}
    jobs = len(labels_known) + (min(captions, len(real.rows)) if has_attributes else 0) + 3
    bar = tqdm(total=jobs, desc="adherence", unit="batch", disable=not progress)
    # what a perfect DiT on this VAE could reach: the measures on the VAE's reconstructions of
    # real clips, each reconstructed once (the label and caption ceilings share held-out clips)
    through_vae: dict[int, torch.Tensor] = {}

    def reconstructed(indices: Sequence[int]) -> list[torch.Tensor]:
        with torch.inference_mode():
            for i in indices:
                if i not in through_vae:
                    through_vae[i] = pipeline.autoencoder.reconstruct(
                        real.clips[i][None], rate, as_generated=True
                    )[0].cpu()
        return [through_vae[i] for i in indices]

    if judge is not None and labels_known:
        generated: dict[str, list[torch.Tensor]] = {}
        for index, label in enumerate(labels_known):
            audio = pipeline.generate(seconds=window, n=per_label, label=label, seed=seed + index, **settings)
            generated[label] = [clip.cpu() for clip in audio]
            bar.update(1)
        clips = [c for label in labels_known for c in generated[label]]
        asked = [label for label in labels_known for _ in generated[label]]
        verdict = judge.judge(clips, asked, rate)
        vae_verdict = judge.judge(
            reconstructed(held), [str(real.rows[i].get("label") or "") for i in held], rate
        )
        out["labels"] = {
            "accuracy": verdict["accuracy"],
            "ceiling": judge.ceiling,
            "vae_ceiling": vae_verdict["accuracy"],
            "vae_ceiling_per_label": vae_verdict["per_label"],
            "per_label": verdict["per_label"],
            "confusion": verdict["confusion"],
            "order": judge.labels,
            "clips_per_label": per_label,
            "held_out_real_clips": judge.held_out,
        }
        out["per_label_distances"] = {
            "generated": per_label_distances(real.by_label(train), generated, rate),
            "real": per_label_distances(real.by_label(train), real.by_label(held), rate),
        }

    if has_attributes:
        rows = [i for i in held + train if real.rows[i].get("caption") or caption_attributes(real.rows[i])]
        rows = rows[:captions]
        clips = []
        for number, i in enumerate(rows):
            ask = row_conditions(pipeline, conditioning, real.rows[i])
            clips.append(
                pipeline.generate(seconds=window, n=1, seed=seed + number, **ask, **settings)[0].cpu()
            )
            bar.update(1)
        asked = [caption_attributes(real.rows[i]) for i in rows]
        text: dict = {
            "generated": attribute_adherence(clips, asked, rate),
            "real": attribute_adherence([real.clips[i] for i in rows], asked, rate),
            "vae": attribute_adherence(reconstructed(rows), asked, rate),
            "captions": [str(real.rows[i].get("caption") or "") for i in rows],
            "asked_by": sorted(row_conditions(pipeline, conditioning, real.rows[rows[0]])) if rows else [],
        }
        if judge is not None:
            row_labels = [str(real.rows[i].get("label") or "") for i in rows]
            text["label_accuracy"] = judge.judge(clips, row_labels, rate)["accuracy"]
            text["label_ceiling"] = judge.ceiling
        out["captions"] = text

    asked_seconds = [round(window * f, 3) for f in (0.5, 0.75, 1.0)]
    clips, asked = [], []
    for index, seconds in enumerate(asked_seconds):
        audio = pipeline.generate(seconds=seconds, n=4, seed=seed + 1000 + index, **settings)
        clips += [clip.cpu() for clip in audio]
        asked += [seconds] * audio.shape[0]
        bar.update(1)
    bar.close()
    out["timing"] = {
        "generated": timing_adherence(clips, asked, pipeline.sample_rate),
        "real": timing_adherence(real.clips, [c.shape[-1] / rate for c in real.clips], rate),
        "asked_seconds": asked_seconds,
    }
    return out


def distance_floors(
    real: Sequence[torch.Tensor],
    reconstructed: Sequence[torch.Tensor],
    generated: Sequence[torch.Tensor],
    sample_rate: int,
) -> dict[str, dict[str, float]]:
    """Distribution distances at equal set sizes, all against the first half of the real clips:
    ``real`` (the second half: the floor any model is measured against), ``reconstructed`` (the
    VAE's reconstructions of the second half: the best a DiT on this VAE can reach) and
    ``generated`` (as many generated clips)."""
    from latentaudio.evaluation import distribution_metrics

    half = len(real) // 2
    if half < 2:
        return {}
    reference, rest = list(real[:half]), slice(half, 2 * half)
    sets = {
        "real": list(real[rest]),
        "reconstructed": list(reconstructed[rest]),
        "generated": list(generated[:half]),
    }
    return {
        name: distribution_metrics(reference, sample_rate, clips, sample_rate)
        for name, clips in sets.items()
        if len(clips) >= 2
    }


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path) -> None:
    """The label confusion matrix (rows: asked, columns: what the judge heard) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion, dtype=float)
    figure, axis = plt.subplots(figsize=(1.2 + 0.7 * len(labels), 1.0 + 0.6 * len(labels)), dpi=100)
    axis.imshow(matrix, cmap="Blues")
    for (r, c), value in np.ndenumerate(matrix):
        dark = value > matrix.max() / 2
        axis.text(c, r, int(value), ha="center", va="center", fontsize=8, color="white" if dark else "black")
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(labels)), labels, fontsize=8)
    axis.set_xlabel("judged as")
    axis.set_ylabel("asked for")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
