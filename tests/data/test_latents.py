import json
import logging
import math

import pytest
import torch
from conftest import write_sine
from safetensors import safe_open
from safetensors.torch import load_file

import latentaudio.data.encode as encode_module
import latentaudio.data.shards as shards_module
from latentaudio.audio import read_audio
from latentaudio.bundle import VAEMismatchError
from latentaudio.data.encode import encode_folder
from latentaudio.data.latent_dataset import LatentDataset
from latentaudio.data.metadata import KEYS, load_metadata
from latentaudio.data.scan import AudioFile, scan_audio_folder
from latentaudio.data.shards import LatentFolderError, manifest_files, read_manifest
from latentaudio.data.split import split
from latentaudio.vae.model import AudioVAE

RATE = 16000
HASH = "0123456789abcdef"


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return AudioVAE(channels=1, base_channels=4, channel_mults=(1, 2), strides=(2, 4), latent_dim=3).eval()


@pytest.fixture
def audio_root(tmp_path):
    """Six sines of different lengths (one at 22.05 kHz stereo), with captions and labels."""
    root = tmp_path / "audio"
    rows = ["path,caption,label,bpm,key"]
    for i in range(6):
        relative = f"set{i % 2}/tone{i}.wav"
        if i == 5:
            write_sine(root / relative, frequency=300.0, seconds=0.5, sample_rate=22050, channels=2)
        else:
            write_sine(root / relative, frequency=200.0 + 50 * i, seconds=0.2 + 0.1 * i)
        if i < 4:  # tone 0 names its tempo and key in columns, tone 1 in its caption
            caption = f"tone number {i}" + (" in Db major at 95 bpm" if i == 1 else "")
            columns = "120,a minor" if i == 0 else ","
            rows.append(f"{relative},{caption},{'low' if i < 2 else 'high'},{columns}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def encode(vae, root, output, vae_hash=HASH, **kwargs):
    files = scan_audio_folder(root, progress=False).files
    metadata = load_metadata(root, [f.path for f in files])
    kwargs.setdefault("shard_frames", 1500)
    return encode_folder(vae, vae_hash, RATE, root, files, output, metadata, progress=False, **kwargs)


def direct_latents(vae, path):
    audio, _ = read_audio(path, sample_rate=RATE, channels=1)
    with torch.inference_mode():
        return vae.encode(audio[None])[0]  # (latent_dim, F)


def read_shard(path):
    """(tensors, clip records); the header's key order is not fixed, so bytes are not compared."""
    with safe_open(str(path), framework="pt") as handle:
        clips = json.loads(handle.metadata()["clips"])
    return load_file(str(path)), clips


def test_shards_hold_every_file_once_and_read_back_exactly(vae, audio_root, tmp_path):
    manifest = encode(vae, audio_root, tmp_path / "latents")
    assert manifest["complete"] and manifest["vae_hash"] == HASH
    assert (manifest["sample_rate"], manifest["hop"], manifest["latent_dim"]) == (RATE, 8, 3)
    assert len(manifest["shards"]) >= 3  # clips spread over several shards
    covered = [path for shard in manifest["shards"] for path in shard["files"]]
    assert sorted(covered) == sorted(f"set{i % 2}/tone{i}.wav" for i in range(6))
    on_disk = sorted(p.name for p in (tmp_path / "latents").iterdir())
    assert on_disk == ["manifest.json"] + [s["name"] for s in manifest["shards"]]
    assert manifest["labels"] == ["high", "low"]

    dataset = LatentDataset(tmp_path / "latents", crop_frames=2000, random_crop=False)
    assert len(dataset) == 6 and dataset.labels == ["high", "low"]
    for item in (dataset[i] for i in range(len(dataset))):
        expected = direct_latents(vae, audio_root / item["path"])  # (3, F)
        frames = expected.shape[-1]
        assert item["latents"].shape == (3, 2000) and item["latents"].dtype == torch.float32
        assert torch.allclose(item["latents"][:, :frames], expected, atol=1e-6)
        assert item["padding_mask"].sum() == frames and not item["latents"][:, frames:].any()
        assert item["seconds_start"] == 0.0
    by_path = {dataset[i]["path"]: dataset[i] for i in range(len(dataset))}
    assert by_path["set0/tone0.wav"]["caption"] == "tone number 0"
    assert by_path["set0/tone0.wav"]["label"] == 1  # "low" in ["high", "low"]
    assert by_path["set1/tone5.wav"]["caption"] == "" and by_path["set1/tone5.wav"]["label"] == -1
    assert by_path["set1/tone5.wav"]["seconds_total"] == pytest.approx(0.5)
    # tempo and key for conditioning: from the columns, else from the caption, else none
    assert (by_path["set0/tone0.wav"]["bpm"], by_path["set0/tone0.wav"]["key"]) == (
        120.0,
        KEYS.index("A minor"),
    )
    assert (by_path["set1/tone1.wav"]["bpm"], by_path["set1/tone1.wav"]["key"]) == (
        95.0,
        KEYS.index("C# major"),
    )
    assert math.isnan(by_path["set1/tone5.wav"]["bpm"]) and by_path["set1/tone5.wav"]["key"] == -1


def test_long_files_are_encoded_in_chunks_like_one_piece(vae, tmp_path):
    root = tmp_path / "audio"
    write_sine(root / "long.wav", seconds=2.0)
    manifest = encode(vae, root, tmp_path / "latents", chunk_seconds=0.1, overlap_frames=64)
    stored = load_file(str(tmp_path / "latents" / manifest["shards"][0]["name"]))["latents"]
    assert torch.allclose(stored, direct_latents(vae, root / "long.wav"), atol=1e-4)


def test_crop_timing_follows_the_crop(vae, tmp_path):
    root = tmp_path / "audio"
    write_sine(root / "one.wav", seconds=1.0)  # 16000 samples, hop 8: 2000 frames
    write_sine(root / "other_rate.wav", seconds=0.75, sample_rate=22050)
    encode(vae, root, tmp_path / "latents")
    middle = LatentDataset(tmp_path / "latents", crop_frames=500, random_crop=False, paths={"one.wav"})
    item = middle[0]
    assert item["seconds_start"] == pytest.approx(750 * 8 / RATE)  # (2000 - 500) // 2 frames in
    assert item["seconds_total"] == pytest.approx(1.0)
    full = LatentDataset(tmp_path / "latents", crop_frames=2000, random_crop=False, paths={"one.wav"})[0]
    randomly = LatentDataset(tmp_path / "latents", crop_frames=500, paths={"one.wav"})
    torch.manual_seed(3)
    starts = set()
    for _ in range(5):
        item = randomly[0]
        start = round(item["seconds_start"] * RATE / 8)
        starts.add(start)
        assert item["seconds_start"] == pytest.approx(start * 8 / RATE)
        assert torch.equal(item["latents"], full["latents"][:, start : start + 500])
        assert item["padding_mask"].all() and item["seconds_total"] == pytest.approx(1.0)
    assert len(starts) > 1
    other = LatentDataset(tmp_path / "latents", crop_frames=500, paths={"other_rate.wav"})[0]
    assert other["seconds_total"] == int(0.75 * 22050) / 22050  # the source file's own length


def test_resume_after_a_kill_encodes_each_file_once_and_matches_an_uninterrupted_run(
    vae, audio_root, tmp_path, monkeypatch
):
    reference = encode(vae, audio_root, tmp_path / "reference")

    real_write_shard, real_read_audio = shards_module.write_shard, encode_module.read_audio
    written, reads = [], []

    def write_then_die(path, *args):
        real_write_shard(path, *args)
        written.append(path.name)
        if len(written) == 2:  # the second shard is in place, but the manifest does not list it yet
            raise KeyboardInterrupt

    def counting_read_audio(path, *args, **kwargs):
        reads.append(str(path.relative_to(audio_root)))
        return real_read_audio(path, *args, **kwargs)

    monkeypatch.setattr(shards_module, "write_shard", write_then_die)
    monkeypatch.setattr(encode_module, "read_audio", counting_read_audio)
    output = tmp_path / "latents"
    with pytest.raises(KeyboardInterrupt):
        encode(vae, audio_root, output)
    killed = read_manifest(output, require_complete=False)
    assert [s["name"] for s in killed["shards"]] == ["shard-00000.safetensors"]
    with pytest.raises(LatentFolderError, match="unfinished"):
        read_manifest(output)
    (output / ".shard-00002.safetensors.tmp-99999").write_bytes(b"half a shard")  # a kill mid-write

    monkeypatch.setattr(shards_module, "write_shard", real_write_shard)
    reads.clear()
    resumed = encode(vae, audio_root, output)
    assert not set(reads) & set(killed["shards"][0]["files"])
    assert sorted(reads) == sorted(set(reads))
    assert resumed == reference
    assert sorted(p.name for p in output.iterdir()) == sorted(
        p.name for p in (tmp_path / "reference").iterdir()
    )
    for shard in reference["shards"]:
        ours, theirs = read_shard(output / shard["name"]), read_shard(tmp_path / "reference" / shard["name"])
        assert ours[1] == theirs[1] and all(torch.equal(ours[0][k], theirs[0][k]) for k in theirs[0])

    reads.clear()
    assert encode(vae, audio_root, output) == reference and reads == []  # a finished folder: nothing to do


def test_undecodable_file_and_non_finite_latents_are_skipped_with_one_warning(
    vae, audio_root, tmp_path, monkeypatch, caplog
):
    files = scan_audio_folder(audio_root, progress=False).files
    (audio_root / "broken.wav").write_bytes(b"RIFF but not really audio")
    files.append(AudioFile(path="broken.wav", sample_rate=RATE, channels=1, frames=1000))
    real_encode = encode_module.encode_chunked

    def poisoned(model, audio, *args):
        latents = real_encode(model, audio, *args)
        return latents * math.inf if audio.shape[-1] == int(0.4 * RATE) else latents  # tone2 only

    monkeypatch.setattr(encode_module, "encode_chunked", poisoned)
    with caplog.at_level(logging.WARNING):
        manifest = encode_folder(vae, HASH, RATE, audio_root, files, tmp_path / "latents", progress=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "tone2.wav" in warnings[0] and "non-finite" in warnings[0] and "broken.wav" in warnings[1]
    assert [s["path"] for s in manifest["skipped"]] == ["set0/tone2.wav", "broken.wav"]
    assert manifest["complete"]
    covered = {path for shard in manifest["shards"] for path in shard["files"]}
    assert len(covered) == 5 and "broken.wav" not in covered


def test_statistics_are_exact_over_all_frames(vae, audio_root, tmp_path):
    manifest = encode(vae, audio_root, tmp_path / "latents", shard_frames=700)
    everything = torch.cat(
        [load_file(str(tmp_path / "latents" / s["name"]))["latents"] for s in manifest["shards"]], dim=-1
    ).double()  # (3, all frames)
    statistics = manifest["statistics"]
    assert statistics["frames"] == everything.shape[-1] == manifest["frames"]
    assert torch.allclose(
        torch.tensor(statistics["mean"], dtype=torch.float64), everything.mean(-1), rtol=1e-12, atol=1e-14
    )
    assert torch.allclose(
        torch.tensor(statistics["std"], dtype=torch.float64), everything.std(-1, correction=0), rtol=1e-12
    )
    dataset = LatentDataset(tmp_path / "latents", crop_frames=16)
    assert torch.allclose(dataset.statistics["std"], everything.std(-1, correction=0).float())


def test_another_vae_is_refused_with_both_hashes(vae, audio_root, tmp_path):
    encode(vae, audio_root, tmp_path / "latents")
    with pytest.raises(VAEMismatchError, match=f"{HASH}.*fedcba9876543210"):
        LatentDataset(tmp_path / "latents", crop_frames=16, expected_vae_hash="fedcba9876543210")
    with pytest.raises(VAEMismatchError, match=f"{HASH}.*fedcba9876543210.*another output folder"):
        encode(vae, audio_root, tmp_path / "latents", vae_hash="fedcba9876543210")
    LatentDataset(tmp_path / "latents", crop_frames=16, expected_vae_hash=HASH)


def test_folders_that_are_not_latents_are_refused(tmp_path):
    with pytest.raises(LatentFolderError, match="does not exist"):
        read_manifest(tmp_path / "missing")
    with pytest.raises(LatentFolderError, match="not a latent folder"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"something": "else"}))
    with pytest.raises(LatentFolderError, match="does not describe"):
        LatentDataset(tmp_path, crop_frames=16)


def test_split_is_by_path_and_datasets_follow_it(vae, audio_root, tmp_path):
    manifest = encode(vae, audio_root, tmp_path / "latents")
    train, val = split(manifest_files(manifest), val_fraction=0.3, seed=0)
    assert train and val and not set(train) & set(val) and len(train + val) == 6
    assert split(manifest_files(manifest), 0.3, 0) == (train, val)
    dataset = LatentDataset(tmp_path / "latents", crop_frames=16, random_crop=False, paths=set(val))
    assert {dataset[i]["path"] for i in range(len(dataset))} == set(val)
    labelled = LatentDataset(tmp_path / "latents", crop_frames=16, labels=["low", "high", "other"])
    assert {labelled[i]["label"] for i in range(len(labelled))} == {0, 1, -1}


def test_timed_phonemes_are_cropped_with_the_latents(vae, tmp_path, caplog):
    """Speech: the metadata's phonemes become frame features that move with every crop."""
    from latentaudio.speech.units import frame_features, parse_timings

    root = tmp_path / "speech"
    write_sine(root / "said.wav", frequency=220.0, seconds=1.0)
    write_sine(root / "plain.wav", frequency=330.0, seconds=1.0)
    write_sine(root / "broken.wav", frequency=440.0, seconds=1.0)
    said = json.dumps([["d", 0.0, 0.25], ["ˈaɪ", 0.25, 0.7], ["_", 0.7, 1.0]])
    rows = ["path,text,phonemes", f'said.wav,die,"{said.replace(chr(34), chr(34) * 2)}"', "plain.wav,,"]
    rows.append('broken.wav,x,"[[1, 2]]"')
    (root / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    encode(vae, root, tmp_path / "latents")
    with caplog.at_level(logging.WARNING):
        full = LatentDataset(tmp_path / "latents", crop_frames=4000, random_crop=False)
    assert [clip["path"] for _, clip in full.clips] == ["plain.wav", "said.wav"]
    assert "broken.wav" in caplog.text and full.has_phonemes
    frames = full.clips[1][1]["frames"]  # 2000 frames a second at hop 8
    whole, _ = frame_features(parse_timings(said), frames, RATE / vae.hop)
    item = full[1]
    assert torch.equal(item["phoneme_ids"][:frames], whole)
    assert (item["phoneme_ids"][frames:] == 0).all() and (full[0]["phoneme_ids"] == 0).all()
    crops = LatentDataset(tmp_path / "latents", crop_frames=500, paths={"said.wav"})
    for _ in range(3):
        crop = crops[0]
        start = round(crop["seconds_start"] * RATE / vae.hop)
        assert torch.equal(crop["phoneme_ids"], whole[start : start + 500])
        assert crop["phoneme_progress"].shape == (500, 2)


def test_packing_fills_a_crop_with_the_end_of_another_clip_of_the_same_speaker(vae, tmp_path):
    """Speech: a short clip's spare frames hold the end of another clip by its speaker, before it,
    with that clip's phonemes; never another speaker's; never in validation; pack=0 pads as before."""
    from latentaudio.speech.units import frame_features, parse_timings

    root = tmp_path / "speech"
    rows = ["path,text,phonemes,speaker"]
    for i, (speaker, seconds) in enumerate([("a", 0.3), ("a", 0.5), ("b", 0.2), ("b", 0.4), ("c", 0.2)]):
        write_sine(root / f"{speaker}{i}.wav", frequency=200.0 + 100 * i, seconds=seconds)
        timing = json.dumps([[f"s{i}", 0.0, seconds / 2], ["_", seconds / 2, seconds]])
        rows.append(f'{speaker}{i}.wav,x,"{timing.replace(chr(34), chr(34) * 2)}",{speaker}')
    (root / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    encode(vae, root, tmp_path / "latents")
    crop = 1000  # 0.5 s at hop 8: room in every clip but the longest
    plain = LatentDataset(tmp_path / "latents", crop_frames=crop, random_crop=False)
    whole = {clip["path"]: plain._latents(i, 0, clip["frames"]) for i, (_, clip) in enumerate(plain.clips)}
    units = {
        clip["path"]: frame_features(parse_timings(clip["phonemes"]), clip["frames"], RATE / vae.hop)[0]
        for _, clip in plain.clips
    }
    packed = LatentDataset(tmp_path / "latents", crop_frames=crop, pack=1.0)
    torch.manual_seed(0)
    partners = set()
    for index, (_, clip) in enumerate(packed.clips):
        for _ in range(4):
            item, frames = packed[index], clip["frames"]
            used = int(item["padding_mask"].sum())
            if frames >= crop or clip["speaker"] == "c":  # full already, or no one else speaks as c
                assert used == min(frames, crop) and item["seconds_start"] >= 0
                continue
            before = used - frames
            assert before > 0 and torch.equal(item["latents"][:, before:used], whole[clip["path"]].float())
            partner = next(
                p
                for p, w in whole.items()
                if p != clip["path"]
                and w.shape[1] >= before
                and torch.equal(item["latents"][:, :before], w[:, -before:].float())
            )
            assert partner[0] == clip["speaker"]  # the same speaker's clip, its end
            assert torch.equal(item["phoneme_ids"][:before], units[partner][-before:])
            assert torch.equal(item["phoneme_ids"][before:used], units[clip["path"]])
            assert item["seconds_start"] == 0.0 and item["seconds_total"] == used * vae.hop / RATE
            assert (item["latents"][:, used:] == 0).all()
            partners.add((clip["path"], partner))
    assert ("a0.wav", "a1.wav") in partners and ("b2.wav", "b3.wav") in partners
    for index in range(len(plain)):  # validation crops and pack=0 are never packed
        assert int(plain[index]["padding_mask"].sum()) == min(plain.clips[index][1]["frames"], crop)
    with pytest.raises(ValueError, match="data.pack"):
        LatentDataset(tmp_path / "latents", crop_frames=crop, pack=1.5)
