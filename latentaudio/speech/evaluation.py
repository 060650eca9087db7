"""Speech metrics that need no download: what was said, and by whom (pure torch and numpy).

- :func:`mel_cepstrum`: mel-cepstral coefficients of 16 kHz speech, 25 ms windows every 10 ms;
- :func:`dtw` and :func:`mel_cepstral_distortion` (MCD-DTW, in dB): how far one utterance is
  from another once their timings are aligned;
- :func:`which_sentence` / :func:`sentence_ranks`: the nearest of N candidate sentences by
  MCD-DTW, each candidate given by one or more reference renderings of it;
- :func:`speaker_embedding` and :func:`speaker_similarity`: a speaker vector from feature
  statistics (mel cepstrum and log-f0), or from a local TorchScript speaker model
  (:class:`latentaudio.evaluation.EmbeddingModel`, never downloaded), compared by cosine;
- :func:`evaluate_speech`: all of them for a ``speak`` callable on the held-out folder of the
  speech demo corpus, each beside its real-data ceiling.

Every figure is relative: these are not the SPTK mel-cepstra that published MCD values use, so
compare MCDs within this toolkit, with the other-sentence baseline and the ceiling beside them.
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
import torchaudio.transforms as T

from latentaudio import metrics
from latentaudio.audio import read_audio
from latentaudio.evaluation import EmbeddingModel

ANALYSIS_RATE = metrics.FEATURE_RATE  # speech is analysed mono at 16 kHz
WINDOW, HOP = 400, 160  # 25 ms windows every 10 ms at 16 kHz
N_MELS, N_CEPSTRUM = 40, 25  # c0..c24; distances leave c0 (the level) out
FLOOR_DB = 80.0  # mel bands are floored this far below the clip's loudest, so level does not matter
MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)  # cepstral distance (natural log) to dB
PITCH_RANGE_HZ = (60.0, 500.0)

Speak = Callable[[str, "torch.Tensor | None", "str | None", int], torch.Tensor]


# --------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _mel_and_dct(device: str) -> tuple[T.MelSpectrogram, torch.Tensor]:
    mel = T.MelSpectrogram(
        ANALYSIS_RATE, n_fft=512, win_length=WINDOW, hop_length=HOP, n_mels=N_MELS, power=2.0, center=True
    )
    # c_n = mean_k x_k cos(pi n (k + 1/2) / K): the cepstrum of log|H| = c0 + 2 sum_n c_n cos(n w), the
    # convention MCD's sqrt(2) assumes; MCD then reads as the RMS dB gap of the smoothed mel spectra
    dct = AF.create_dct(N_CEPSTRUM, N_MELS, norm=None) / (2 * N_MELS)  # (n_mels, n_cepstrum)
    return mel.to(device), dct.to(device)


def mel_cepstrum(audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Mel-cepstral coefficients ``(frames, 25)``, c0 first, of a clip ``(channels, samples)`` or ``(samples,)``.

    Channels are averaged and the clip resampled to 16 kHz; 40 mel bands (0-8 kHz) of the power
    spectrum in 25 ms Hann windows every 10 ms, floored 80 dB below the loudest band, as natural
    log amplitudes (half the log power), then a DCT scaled so that c0 is their mean.
    """
    mono = metrics.mono_clips([audio if audio.dim() > 1 else audio[None]], sample_rate)[0]  # (T,)
    mel, dct = _mel_and_dct(str(mono.device))
    power = mel(mono)  # (n_mels, frames)
    log_power = torch.log(power.clamp_min(1e-20))
    log_power = log_power.clamp_min(log_power.max() - FLOOR_DB * math.log(10.0) / 10.0)
    return (0.5 * log_power).T @ dct  # (frames, n_cepstrum)


# --------------------------------------------------------------------------------------
# Alignment and distortion
# --------------------------------------------------------------------------------------


def frame_distances(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` Euclidean distances between the frames of two sequences ``(frames, D)``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    # differences, not |a|^2 + |b|^2 - 2ab: equal frames give exactly 0, not the root of a round-off
    return np.sqrt(np.square(a[:, None, :] - b[None, :, :]).sum(axis=-1))


def dtw(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> tuple[float, np.ndarray]:
    """Dynamic time warping of two feature sequences ``(n, D)`` and ``(m, D)`` on Euclidean frame
    distances; see :func:`align`."""
    return align(frame_distances(a, b))


def align(cost: np.ndarray) -> tuple[float, np.ndarray]:
    """The cheapest monotonic path through a local-cost matrix ``(n, m)``.

    Steps (1, 0), (0, 1) and (1, 1) at equal weight from (0, 0) to (n - 1, m - 1). Returns the
    summed cost along the path and the path ``(length, 2)`` of index pairs. The accumulated costs
    are filled a row at a time, each row in a few vectorised steps.
    """
    cost = np.asarray(cost, dtype=np.float64)
    n, m = cost.shape
    if n == 0 or m == 0:
        raise ValueError(f"dtw needs two non-empty sequences, got {n} and {m} frames")
    total = np.full((n + 1, m + 1), np.inf)  # total[i + 1, j + 1]: best cost of a path ending at (i, j)
    total[0, 0] = 0.0
    for i in range(n):
        # from the row before, then along the row: total[i, j] = min_k<=j (through[k] + cost[i, k+1..j]),
        # a running minimum once the row's cumulative cost is taken out
        through = cost[i] + np.minimum(total[i, :-1], total[i, 1:])
        running = np.cumsum(cost[i])
        total[i + 1, 1:] = running + np.minimum.accumulate(through - running)
    path = [(n - 1, m - 1)]
    i, j = n - 1, m - 1
    while i > 0 or j > 0:  # back along the cheapest predecessor; the diagonal wins ties
        steps = ((total[i, j], i - 1, j - 1), (total[i, j + 1], i - 1, j), (total[i + 1, j], i, j - 1))
        _, i, j = min(steps, key=lambda step: step[0])
        path.append((i, j))
    return float(total[n, m]), np.array(path[::-1], dtype=np.int64)


def mel_cepstral_distortion(
    generated: torch.Tensor,
    reference: torch.Tensor,
    sample_rate: int,
    reference_rate: int | None = None,
) -> float:
    """MCD-DTW in dB: ``10 / ln 10 * sqrt(2 * sum_d (c_d - c'_d)^2)`` per frame pair (c1..c24),
    averaged along the DTW path between the two clips' :func:`mel_cepstrum`.

    ``reference_rate`` defaults to ``sample_rate``. A clip against itself gives 0.
    """
    return _mcd(
        mel_cepstrum(generated, sample_rate),
        mel_cepstrum(reference, sample_rate if reference_rate is None else reference_rate),
    )


def _mcd(cepstrum_a: torch.Tensor, cepstrum_b: torch.Tensor) -> float:
    distances = frame_distances(cepstrum_a[:, 1:], cepstrum_b[:, 1:])
    _, path = align(distances)
    return MCD_SCALE * float(distances[path[:, 0], path[:, 1]].mean())


# --------------------------------------------------------------------------------------
# Which sentence was said
# --------------------------------------------------------------------------------------


def sentence_distances(
    generated: Sequence[torch.Tensor], candidates: Sequence[Sequence[torch.Tensor]], sample_rate: int
) -> np.ndarray:
    """``(len(generated), len(candidates))`` MCD-DTW of each generated clip to each candidate
    sentence: the smallest over that sentence's reference renderings (``candidates[k]``, clips
    ``(channels, samples)`` at ``sample_rate``, one voice or several)."""
    candidate_ceps = [[mel_cepstrum(clip, sample_rate) for clip in renderings] for renderings in candidates]
    if any(not renderings for renderings in candidate_ceps):
        raise ValueError("every candidate sentence needs at least one reference rendering")
    return _matrix([mel_cepstrum(clip, sample_rate) for clip in generated], candidate_ceps)


def _matrix(generated: list[torch.Tensor], candidates: list[list[torch.Tensor]]) -> np.ndarray:
    """MCD-DTW of cepstra ``generated[i]`` to sentence ``k`` (the nearest of ``candidates[k]``)."""
    return np.array([[min(_mcd(g, r) for r in renderings) for renderings in candidates] for g in generated])


def sentence_ranks(distances: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """Per item, the rank (0: nearest) of its target sentence among the candidates; ties count against it."""
    distances = np.asarray(distances)
    target_distance = distances[np.arange(len(targets)), np.asarray(targets)]
    return (distances <= target_distance[:, None]).sum(axis=1) - 1


def which_sentence(
    generated: Sequence[torch.Tensor],
    candidates: Sequence[Sequence[torch.Tensor]],
    targets: Sequence[int],
    sample_rate: int,
) -> dict:
    """Which sentence was said: each generated clip's nearest candidate by MCD-DTW.

    ``candidates[k]`` are reference renderings of sentence ``k`` (see :func:`sentence_distances`);
    ``targets[i]`` is the sentence clip ``i`` was asked to say. Returns ``accuracy`` (nearest is
    the target), ``ranks`` (per item, 0 when right), ``chance`` (1 / candidates) and the
    ``distances`` matrix.
    """
    if len(generated) != len(targets):
        raise ValueError(f"{len(generated)} generated clips but {len(targets)} targets")
    distances = sentence_distances(generated, candidates, sample_rate)
    ranks = sentence_ranks(distances, targets)
    return {
        "accuracy": float((ranks == 0).mean()),
        "ranks": ranks.tolist(),
        "chance": 1.0 / len(candidates),
        "distances": distances,
    }


# --------------------------------------------------------------------------------------
# Who said it
# --------------------------------------------------------------------------------------


def speaker_embedding(
    audio: torch.Tensor, sample_rate: int, embedding: EmbeddingModel | None = None
) -> torch.Tensor:
    """A speaker vector ``(D,)`` (float64) of a clip ``(channels, samples)``.

    With ``embedding`` (a local TorchScript speaker model, see
    :class:`latentaudio.evaluation.EmbeddingModel`), that model's vector. Without, feature
    statistics over the clip's speech frames (within 40 dB of its loudest): mean and standard
    deviation of c1..c12 of :func:`mel_cepstrum` (the vocal tract), median and spread (quartile
    gap) of log-f0 from torchaudio's NCCF pitch detector (the voice's pitch): 26 numbers.
    """
    audio = audio if audio.dim() > 1 else audio[None]
    if embedding is not None:
        return embedding([audio], sample_rate)[0]
    cepstrum = mel_cepstrum(audio, sample_rate)  # (frames, 25)
    speech = cepstrum[:, 0] >= cepstrum[:, 0].max() - 40.0 / (20.0 / math.log(10.0))  # c0: mean log amplitude
    frames = cepstrum[speech, 1:13]
    mono = metrics.mono_clips([audio], sample_rate)[0]
    f0 = AF.detect_pitch_frequency(mono[None], ANALYSIS_RATE, frame_time=HOP / ANALYSIS_RATE, freq_low=60)[0]
    count = min(len(f0), len(speech))
    f0 = f0[:count][speech[:count]]
    f0 = f0[(f0 >= PITCH_RANGE_HZ[0]) & (f0 <= PITCH_RANGE_HZ[1])]
    if len(f0) == 0:
        pitch = torch.zeros(2)
    else:
        log_f0 = torch.log(f0.double())
        quartiles = torch.quantile(log_f0, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
        pitch = torch.stack([quartiles[1], quartiles[2] - quartiles[0]])
    return torch.cat([frames.mean(0).double(), frames.std(0, unbiased=False).double(), pitch.double()])


def speaker_similarity(
    a: torch.Tensor, b: torch.Tensor, background: torch.Tensor | None = None
) -> torch.Tensor:
    """Cosine similarity of speaker vectors ``(D,)`` or ``(N, D)`` (rows paired, broadcast).

    Raw feature statistics share a large common part (every voice has a positive log-f0), so
    give ``background``, speaker vectors of a population ``(M, D)`` (several voices): both sides
    are then standardised by its per-dimension mean and standard deviation first, and the cosine
    measures how alike two voices are compared with that population.
    """
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    if background is not None:
        background = torch.as_tensor(background).double()
        mean, std = background.mean(0), background.std(0, unbiased=False).clamp_min(1e-8)
        a, b = (a - mean) / std, (b - mean) / std
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


# --------------------------------------------------------------------------------------
# A speech model on the held-out demo sentences
# --------------------------------------------------------------------------------------


def read_references(folder: str | Path) -> tuple[list[str], dict[tuple[int, str], torch.Tensor], int]:
    """The held-out folder of the speech demo corpus (``metadata.csv`` with ``path``, ``text``,
    ``speaker``): its sentences in order, clips ``(1, samples)`` by ``(sentence, speaker)``, the rate."""
    folder = Path(folder)
    metadata = folder / "metadata.csv"
    if not metadata.is_file():
        raise FileNotFoundError(f"{metadata} does not exist: make it with `make demo-speech-data`")
    with open(metadata, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    sentences = list(dict.fromkeys(row["text"] for row in rows))
    clips, rates = {}, set()
    for row in rows:
        audio, rate = read_audio(folder / row["path"])
        clips[(sentences.index(row["text"]), row["speaker"])] = audio.float().mean(dim=0, keepdim=True)
        rates.add(int(rate))
    if len(rates) != 1:
        raise ValueError(
            f"the clips of {folder} have several sample rates ({sorted(rates)}); resample them to one"
        )
    return sentences, clips, rates.pop()


def _content_scores(distances: np.ndarray) -> dict:
    """MCD to the asked sentence and to the others, and which-sentence accuracy, of a square
    ``(asked sentence, candidate)`` distance matrix."""
    n = len(distances)
    ranks = sentence_ranks(distances, range(n))
    return {
        "mcd_same_sentence": float(np.diag(distances).mean()),
        "mcd_other_sentence": float(distances[~np.eye(n, dtype=bool)].mean()) if n > 1 else float("nan"),
        "which_sentence_accuracy": float((ranks == 0).mean()),
        "which_sentence_mean_rank": float(ranks.mean()),
        "ranks": ranks.tolist(),
    }


def _merge(parts: list[dict]) -> dict:
    """Content scores of several voices (equal sizes) as one: means, ranks concatenated."""
    merged = {key: float(np.mean([part[key] for part in parts])) for key in parts[0] if key != "ranks"}
    merged["ranks"] = [rank for part in parts for rank in part["ranks"]]
    return merged


def evaluate_speech(
    speak: Speak | None,
    heldout: str | Path = "data/demo-speech/heldout",
    sentences: int | Sequence[int] | None = None,
    voices: Sequence[str] | None = None,
    sample_rate: int | None = None,
    seed: int = 0,
    embedding: EmbeddingModel | None = None,
    ceiling: bool = True,
    codec: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
) -> dict:
    """What a speech model says and in whose voice, on the held-out sentences of the demo corpus.

    ``speak(text, prompt, prompt_text, seed)`` returns ``(1, samples)`` at ``sample_rate``
    (default: the folder's rate); ``prompt`` is a ``(1, samples)`` clip at the folder's rate, or
    None. ``sentences`` (a count of the first ones, or indices; default all) and ``voices``
    (default all) choose the items. For each sentence ``i`` and voice ``v`` the model says
    sentence ``i`` prompted by the next chosen sentence in voice ``v`` (another text, so the prompt
    gives the voice, not the words); and says each sentence once unprompted.

    - content: MCD-DTW of each prompted clip to ``v``'s rendering of its sentence
      (``mcd_same_sentence``) and of the others (``mcd_other_sentence``, the baseline), and
      which sentence is nearest among the chosen ones in ``v``'s renderings; unprompted clips
      against every voice's renderings (a sentence's distance: its nearest rendering);
    - voice: :func:`speaker_similarity` of each prompted clip to its prompt
      (``speaker_similarity_prompt``), to the same prompt sentence in the other voices
      (``speaker_similarity_other_voices``), ``speaker_accuracy`` (the prompt's voice is the most
      similar); unprompted clips against the same prompts: the baseline that prompting must beat.
      Standardised by all the chosen references (``background`` of :func:`speaker_similarity`).
    - ``ceiling``: the same figures for real speech. Content: each item's reference in the next
      voice stands in for the generated clip (right words, another voice: a perfect model's
      score, as no rendering matches another voice frame for frame). Voice: the reference of the
      item itself (right voice, another sentence than the prompt).

    ``codec(clip, rate)``: what every generated clip has been through (a model's VAE: encode and
    decode, same length). The voice figures then compare with the references passed through it
    too, so that they measure whose voice was chosen, not the codec's own mark on every voice
    (the demo VAE's reconstructions of the right voice score chance against raw references).

    Returns a dict for ``metrics.json``: ``generated``, ``unprompted`` and ``ceiling`` scores
    (``speak=None``: the ceiling alone, nothing generated).
    """
    texts, references, rate = read_references(heldout)
    sample_rate = rate if sample_rate is None else int(sample_rate)
    chosen = list(range(len(texts)))
    if sentences is not None:
        chosen = chosen[: int(sentences)] if isinstance(sentences, int) else [int(i) for i in sentences]
    known = sorted({voice for _, voice in references}, key=[v for _, v in references].index)
    voices = known if voices is None else [str(v) for v in voices]
    missing = [(i, v) for i in chosen for v in voices if (i, v) not in references]
    if missing or len(chosen) < 2 or (ceiling and len(voices) < 2):
        raise ValueError(
            f"{heldout}: need at least 2 sentences (and 2 voices for the ceiling) rendered in every voice; "
            f"missing {missing[:3]}"
        )
    prompt_of = {i: chosen[(k + 1) % len(chosen)] for k, i in enumerate(chosen)}

    def cepstra(clips, clip_rate):
        return {key: mel_cepstrum(clip, clip_rate) for key, clip in clips.items()}

    def vectors(clips, clip_rate):
        return {key: speaker_embedding(clip, clip_rate, embedding) for key, clip in clips.items()}

    used = {(i, v): references[(i, v)] for i in chosen for v in voices}
    reference_ceps = cepstra(used, rate)
    voiced = used if codec is None else {key: codec(clip, rate) for key, clip in used.items()}
    reference_vectors = vectors(voiced, rate)
    background = torch.stack(list(reference_vectors.values()))

    def content(ceps: dict) -> dict:
        return _merge(
            [
                _content_scores(
                    _matrix([ceps[(i, v)] for i in chosen], [[reference_ceps[(k, v)]] for k in chosen])
                )
                for v in voices
            ]
        )

    def voice(vecs: dict) -> dict:
        same, other, right = [], [], []
        for (i, v), vector in vecs.items():
            prompts = torch.stack([reference_vectors[(prompt_of[i], w)] for w in voices])
            similarity = speaker_similarity(vector[None], prompts, background)  # (voices,)
            k = voices.index(v)
            same.append(float(similarity[k]))
            other.append(float(torch.cat([similarity[:k], similarity[k + 1 :]]).mean()))
            right.append(float(similarity.argmax() == k))
        return {
            "speaker_similarity_prompt": float(np.mean(same)),
            "speaker_similarity_other_voices": float(np.mean(other)),
            "speaker_accuracy": float(np.mean(right)),
        }

    result = {
        "sentences": len(chosen),
        "voices": voices,
        "which_sentence_chance": 1.0 / len(chosen),
        "speaker_chance": 1.0 / len(voices),
    }
    if speak is not None:
        prompted, unprompted, calls = {}, {}, 0
        for i in chosen:
            for v in voices:
                prompted[(i, v)] = speak(
                    texts[i], references[(prompt_of[i], v)], texts[prompt_of[i]], seed + calls
                )
                calls += 1
            unprompted[i] = speak(texts[i], None, None, seed + calls)
            calls += 1

        prompted_ceps = cepstra(prompted, sample_rate)
        result["generated"] = {**content(prompted_ceps), **voice(vectors(prompted, sample_rate))}
        unprompted_ceps = cepstra(unprompted, sample_rate)
        unprompted_vectors = vectors(unprompted, sample_rate)
        every_voice = [[reference_ceps[(k, v)] for v in voices] for k in chosen]
        result["unprompted"] = {
            **_content_scores(_matrix([unprompted_ceps[i] for i in chosen], every_voice)),
            **voice({(i, v): unprompted_vectors[i] for i in chosen for v in voices}),
        }
    if ceiling:
        next_voice = {v: voices[(k + 1) % len(voices)] for k, v in enumerate(voices)}
        stand_ins = {(i, v): reference_ceps[(i, next_voice[v])] for i in chosen for v in voices}
        same_voice = {(i, v): reference_vectors[(i, v)] for i in chosen for v in voices}
        result["ceiling"] = {**content(stand_ins), **voice(same_voice)}
    return result


def evaluate_pipeline(pipeline, heldout: str | Path, reconstruction: bool = True, **options) -> dict:
    """:func:`evaluate_speech` of a speech :class:`~latentaudio.pipeline.Pipeline` (a DiT trained
    with ``conditioning.phonemes``), with its VAE as the ``codec``; ``reconstruction`` adds the
    same figures for the VAE's reconstructions of the references (``"vae"``: what a perfect DiT
    could reach through this VAE). ``options``: ``sentences``, ``voices``, ``seed``, ``embedding``,
    ``ceiling``, and the sampling settings of ``Pipeline.speak`` (``steps``, ``cfg_scale``, ...).
    The generated clips are returned under ``"clips"``, keyed by (text, prompt voice or None).
    """
    names = ("sentences", "voices", "seed", "embedding", "ceiling")
    common = {key: options.pop(key) for key in names if key in options}
    texts, references, rate = read_references(heldout)
    voice_of = {_fingerprint(clip): voice for (_, voice), clip in references.items()}
    first_voice = next(iter(references))[1]
    autoencoder = pipeline.autoencoder

    coded: dict = {}  # each reference through the VAE once: both passes and reconstruct() reuse it

    def codec(clip: torch.Tensor, clip_rate: int) -> torch.Tensor:
        key = (_fingerprint(clip), clip_rate)
        if key not in coded:
            with torch.inference_mode():
                coded[key] = autoencoder.decode(
                    autoencoder.encode(clip[None], clip_rate), length=clip.shape[-1]
                )[0]
        return coded[key]

    clips: dict = {}

    def speak(text, prompt, prompt_text, seed):
        audio = pipeline.speak(
            text, prompt, rate if prompt is not None else None, prompt_text, seed=seed, **options
        )
        clips[(text, None if prompt is None else voice_of[_fingerprint(prompt)])] = audio[0]
        return audio[0]

    def reconstruct(text, prompt, prompt_text, seed):
        voice = first_voice if prompt is None else voice_of[_fingerprint(prompt)]
        return codec(references[(texts.index(text), voice)], rate)

    result = evaluate_speech(speak, heldout, sample_rate=pipeline.sample_rate, codec=codec, **common)
    if reconstruction:
        through = {**common, "ceiling": False}
        result["vae"] = evaluate_speech(reconstruct, heldout, sample_rate=rate, codec=codec, **through)[
            "generated"
        ]
    result["clips"] = clips
    return result


def _fingerprint(clip: torch.Tensor) -> int:
    """evaluate_speech reads the references itself: a prompt's voice is found by its samples."""
    return hash(clip.numpy().tobytes())
