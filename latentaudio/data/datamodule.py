"""The Lightning DataModules: an audio folder (stage one) or a latent folder (stage two) into
train and validation batches, split by :func:`latentaudio.data.split.split`."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from latentaudio.bundle import check_same_vae
from latentaudio.data.dataset import AudioCropDataset, check_normalize, check_pitch_augment
from latentaudio.data.latent_dataset import LatentDataset, check_crop_frames, check_pack
from latentaudio.data.metadata import label_vocabulary, load_metadata
from latentaudio.data.resumable import ResumableLoader
from latentaudio.data.scan import ScanResult, scan_audio_folder
from latentaudio.data.shards import ENCODE_AGAIN, manifest_files, read_manifest
from latentaudio.data.split import check_val_fraction, split

log = logging.getLogger(__name__)


def check_audio_data(
    normalize: str,
    val_fraction: float,
    augment_pitch_probability: float = 0.0,
    augment_pitch_max_semitones: float = 12.0,
) -> None:
    """The rules on ``data.*`` of :class:`AudioDataModule` alone; apps call this to fail before any work."""
    check_normalize(normalize)
    check_val_fraction(val_fraction)
    check_pitch_augment(augment_pitch_probability, augment_pitch_max_semitones)


def check_latent_data(crop_frames: int, val_fraction: float, pack: float = 0.0) -> None:
    """The rules on ``data.*`` of :class:`LatentDataModule` alone; apps call this to fail before encoding."""
    check_crop_frames(crop_frames)
    check_val_fraction(val_fraction)
    check_pack(pack)


class AudioDataModule(pl.LightningDataModule):
    """Scans ``root`` once, splits files by a hash of their path, serves fixed-length crops."""

    def __init__(
        self,
        root: str,
        sample_rate: int,
        channels: int,
        sample_length: int,
        batch_size: int = 8,
        val_fraction: float = 0.05,
        split_seed: int = 0,
        normalize: str = "none",
        target_db: float = -1.0,
        min_seconds: float = 0.05,
        check_content: bool = True,
        cache_dir: str | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        drop_last: bool = True,
        augment_pitch_probability: float = 0.0,
        augment_pitch_max_semitones: float = 12.0,
    ):
        super().__init__()
        check_audio_data(normalize, val_fraction, augment_pitch_probability, augment_pitch_max_semitones)
        self.save_hyperparameters()
        self.scan: ScanResult | None = None
        self.labels: list[str] = []
        self.train_set: AudioCropDataset | None = None
        self.val_set: AudioCropDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        hp = self.hparams
        self.scan = scan_audio_folder(hp.root, hp.min_seconds, hp.check_content, hp.cache_dir)
        metadata = load_metadata(hp.root, [f.path for f in self.scan.files])
        self.labels = label_vocabulary(metadata)
        by_path = {f.path: f for f in self.scan.files}
        train_paths, val_paths = split(by_path, hp.val_fraction, hp.split_seed)
        train, val = [by_path[p] for p in train_paths], [by_path[p] for p in val_paths]
        common = dict(
            root=hp.root,
            sample_rate=hp.sample_rate,
            channels=hp.channels,
            sample_length=hp.sample_length,
            metadata=metadata,
            labels=self.labels,
            normalize=hp.normalize,
            target_db=hp.target_db,
        )
        augment = dict(
            augment_pitch_probability=hp.augment_pitch_probability,
            augment_pitch_max_semitones=hp.augment_pitch_max_semitones,
        )
        self.train_set = AudioCropDataset(files=train, random_crop=True, **common, **augment)
        self.val_set = AudioCropDataset(files=val, random_crop=False, **common)
        log.info("%d training files, %d validation files, %d labels", len(train), len(val), len(self.labels))

    def train_dataloader(self) -> DataLoader:
        return _loader(self.train_set, self.hparams, shuffle=True, drop_last=self.hparams.drop_last)

    def val_dataloader(self) -> DataLoader:
        return _loader(self.val_set, self.hparams, shuffle=False, drop_last=False)


class LatentDataModule(pl.LightningDataModule):
    """Random crops of pre-encoded latents (from ``encode-dataset``), split by a hash of the source path."""

    def __init__(
        self,
        latents: str,
        crop_frames: int,
        batch_size: int = 16,
        val_fraction: float = 0.05,
        split_seed: int = 0,
        expected_vae_hash: str | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        drop_last: bool = True,
        labels: list[str] | None = None,
        pack: float = 0.0,
    ):
        """``labels``: the label vocabulary, in the order of the ids the network knows (default:
        the labels found in the shards); a label outside it counts as none. ``pack``: how often a
        training crop is filled with the end of another clip of the same speaker
        (:class:`~latentaudio.data.latent_dataset.LatentDataset`)."""
        super().__init__()
        self.save_hyperparameters(ignore=["labels"])  # the module holds the labels
        check_latent_data(crop_frames, val_fraction, pack)
        self.manifest = read_manifest(latents)
        if expected_vae_hash is not None:
            check_same_vae(
                self.manifest["vae_hash"], expected_vae_hash, f"the latents in {latents}", ENCODE_AGAIN
            )
        self.labels: list[str] = list(self.manifest.get("labels") or []) if labels is None else list(labels)
        self.train_set: LatentDataset | None = None
        self.val_set: LatentDataset | None = None

    @property
    def statistics(self) -> dict:
        return self.manifest["statistics"]

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        hp = self.hparams
        train_paths, val_paths = split(manifest_files(self.manifest), hp.val_fraction, hp.split_seed)
        common = dict(directory=hp.latents, crop_frames=hp.crop_frames, labels=self.labels)
        self.train_set = LatentDataset(random_crop=True, paths=set(train_paths), pack=hp.pack, **common)
        # one batch layout for both: phoneme features wherever any training clip has phonemes
        phonemes = self.train_set.has_phonemes
        self.val_set = LatentDataset(random_crop=False, paths=set(val_paths), phonemes=phonemes, **common)
        log.info("%d training clips, %d validation clips of latents", len(self.train_set), len(self.val_set))

    def train_dataloader(self) -> DataLoader:
        return _loader(self.train_set, self.hparams, shuffle=True, drop_last=self.hparams.drop_last)

    def val_dataloader(self) -> DataLoader:
        return _loader(self.val_set, self.hparams, shuffle=False, drop_last=False)


def _loader(dataset, hp, shuffle: bool, drop_last: bool) -> DataLoader:
    workers = hp.num_workers
    # training loaders continue mid-epoch after a restart (Lightning saves their state)
    loader = ResumableLoader if shuffle else DataLoader
    return loader(
        dataset,
        batch_size=hp.batch_size,
        drop_last=drop_last and len(dataset) >= hp.batch_size,
        num_workers=workers,
        pin_memory=hp.pin_memory,
        persistent_workers=hp.persistent_workers and workers > 0,
        prefetch_factor=hp.prefetch_factor if workers > 0 else None,
    )
