"""Random fixed-length crops of pre-encoded latents (a latent folder), for training stage two."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from latentaudio.bundle import check_same_vae
from latentaudio.data.metadata import row_tempo_and_key
from latentaudio.data.shards import ENCODE_AGAIN, read_manifest, read_shard
from latentaudio.speech.units import frame_features, parse_timings

log = logging.getLogger(__name__)


class LatentDataset(Dataset):
    """Crops of ``crop_frames`` latent frames, one item per clip of a latent folder.

    Every shard is loaded into memory at construction: fine up to a few GB of latents
    (about 400 h of SAO-size latents); larger sets need memory-mapped shards.
    Training crops start at random; validation crops (``random_crop=False``) are the middle
    of each clip. Shorter clips are zero-padded; ``padding_mask`` is True on real frames.
    ``paths`` (source files, as :func:`latentaudio.data.split.split` gives them) limits the clips.

    ``pack``: how often a training crop with room to spare is filled, before its clip, with the
    end of another clip of the same ``speaker`` (the metadata column; a corpus without one is
    taken as one voice). Speech clips are shorter than the window that has to hold a voice
    prompt and a sentence: packing spends the padded frames on learning, and shows the model
    what it does at inference, a new sentence after another one in the same voice. A packed
    item's ``seconds_start`` is 0 and ``seconds_total`` the packed length.

    Speech: when any clip has timed phonemes (the metadata's ``phonemes`` column), every item
    also has ``phoneme_ids`` (crop_frames, UNIT_SLOTS) and ``phoneme_progress`` (crop_frames, 2),
    cropped with the latents (see :mod:`latentaudio.speech.units`; all ``<pad>`` for a clip
    without them; ``phonemes`` forces the layout, as a validation set takes its training set's).
    A clip whose phonemes cannot be read is left out with one warning naming it.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        crop_frames: int,
        random_crop: bool = True,
        expected_vae_hash: str | None = None,
        labels: list[str] | None = None,
        paths: set[str] | None = None,
        pack: float = 0.0,
        phonemes: bool | None = None,
    ):
        check_crop_frames(crop_frames)
        check_pack(pack)
        self.directory = Path(directory).expanduser()
        manifest = read_manifest(self.directory)
        if expected_vae_hash is not None:
            check_same_vae(
                manifest["vae_hash"], expected_vae_hash, f"the latents in {self.directory}", ENCODE_AGAIN
            )
        self.manifest = manifest
        self.vae_hash: str = manifest["vae_hash"]
        self.sample_rate: int = manifest["sample_rate"]
        self.hop: int = manifest["hop"]
        self.latent_dim: int = manifest["latent_dim"]
        self.crop_frames = crop_frames
        self.random_crop = random_crop
        self.pack = float(pack)
        self.vocabulary: list[str] = list(manifest.get("labels", []))  # sorted distinct labels found
        self.labels = list(labels) if labels is not None else self.vocabulary
        self.label_index = {name: i for i, name in enumerate(self.labels)}
        statistics = manifest["statistics"]
        self.statistics = {
            "mean": torch.tensor(statistics["mean"], dtype=torch.float32),
            "std": torch.tensor(statistics["std"], dtype=torch.float32),
        }
        paths = set(paths) if paths is not None else None
        self.frame_rate = self.sample_rate / self.hop
        self.shards: list[torch.Tensor] = []
        self.clips: list[tuple[int, dict]] = []  # (shard index, clip record)
        for shard in manifest["shards"]:
            if paths is not None and not paths.intersection(shard["files"]):
                continue
            latents, clips = read_shard(self.directory / shard["name"])
            self.shards.append(latents)
            for clip in clips:
                if paths is None or clip["path"] in paths:
                    # parsed once here, not at every item: from the bpm and key columns, or the
                    # caption for shards written before those columns were kept
                    clip["bpm_value"], clip["key_index"] = row_tempo_and_key(clip)
                    try:
                        clip["timing"] = parse_timings(clip.get("phonemes"))
                    except (ValueError, TypeError) as error:  # JSONDecodeError is a ValueError
                        log.warning(
                            "skipping %s: its phonemes column cannot be read (%s)", clip["path"], error
                        )
                        continue
                    self.clips.append((len(self.shards) - 1, clip))
        self.has_phonemes = any(clip["timing"] for _, clip in self.clips) if phonemes is None else phonemes
        self.speakers: dict[str, list[int]] = {}  # speaker -> indices of its clips, for packing
        for index, (_, clip) in enumerate(self.clips):
            self.speakers.setdefault(clip.get("speaker", ""), []).append(index)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        shard, clip = self.clips[index]
        frames = clip["frames"]
        spare = max(frames - self.crop_frames, 0)
        if self.random_crop:
            crop_start = int(torch.randint(0, spare + 1, ()).item())
        else:
            crop_start = spare // 2
        pieces = [(index, crop_start, min(frames, self.crop_frames))]  # (clip, first frame, frames)
        partner = self._partner(index, self.crop_frames - pieces[0][2])
        if partner is not None:
            pieces.insert(0, partner)
        used = sum(count for *_, count in pieces)
        missing = self.crop_frames - used
        latents = torch.cat([self._latents(i, first, count) for i, first, count in pieces], dim=1)
        label = clip["label"]
        item = {
            "latents": torch.nn.functional.pad(latents.float(), (0, missing)),  # (latent_dim, crop_frames)
            "padding_mask": torch.arange(self.crop_frames) < used,  # (crop_frames,)
            "seconds_start": clip["start"] + crop_start * self.hop / self.sample_rate,
            "seconds_total": clip["duration"],
            "caption": clip["caption"],
            "label": self.label_index.get(label, -1) if label else -1,
            "bpm": clip["bpm_value"],  # NaN: none given
            "key": clip["key_index"],  # index in metadata.KEYS, -1: none given
            "path": clip["path"],
        }
        if partner is not None:
            item["seconds_start"], item["seconds_total"] = 0.0, used * self.hop / self.sample_rate
        if self.has_phonemes:
            features = [self._phonemes(self.clips[i][1]) for i, *_ in pieces]
            for name, part in (("phoneme_ids", 0), ("phoneme_progress", 1)):
                cropped = [f[part][first : first + count] for f, (_, first, count) in zip(features, pieces)]
                item[name] = torch.nn.functional.pad(
                    torch.cat(cropped), (0, 0, 0, missing)
                )  # (crop_frames, .)
        return item

    def _latents(self, index: int, first: int, count: int) -> torch.Tensor:
        shard, clip = self.clips[index]
        begin = clip["offset"] + first
        return self.shards[shard][:, begin : begin + count]  # (latent_dim, count)

    def _partner(self, index: int, room: int) -> tuple[int, int, int] | None:
        """(clip, first frame, frames): the end of another clip of the same speaker to put before
        clip ``index``, filling up to ``room`` frames; None when this crop is not packed."""
        if not (self.random_crop and self.pack > 0.0 and room > 0):
            return None
        if float(torch.rand(())) >= self.pack:
            return None
        group = self.speakers[self.clips[index][1].get("speaker", "")]
        if len(group) < 2:
            return None
        other = group[int(torch.randint(0, len(group) - 1, ()))]
        other = group[-1] if other == index else other  # any clip of the group but this one
        frames = self.clips[other][1]["frames"]
        count = min(frames, room)
        return other, frames - count, count

    def _phonemes(self, clip: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole clip's frame features, made once per clip (clips are short, the table small)."""
        if "phoneme_frames" not in clip:
            clip["phoneme_frames"] = frame_features(clip["timing"], clip["frames"], self.frame_rate)
        return clip["phoneme_frames"]


def check_pack(pack: float) -> None:
    if not 0.0 <= float(pack) <= 1.0:
        raise ValueError(f"data.pack={pack!r}: give how often a crop is packed, from 0 (never) to 1 (always)")


def check_crop_frames(crop_frames: int) -> None:
    if not isinstance(crop_frames, int) or crop_frames < 1:
        raise ValueError(
            f"data.crop_frames={crop_frames!r}: give a whole number of latent frames, at least 1"
        )
