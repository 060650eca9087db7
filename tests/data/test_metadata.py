import math
import os

from conftest import write_sine

from latentaudio.data import metadata
from latentaudio.data.metadata import load_metadata
from latentaudio.data.scan import scan_audio_folder


def test_a_symlinked_file_keeps_its_own_csv_row(tmp_path):
    root = tmp_path / "audio"
    write_sine(root / "real.wav", frequency=300.0)
    write_sine(tmp_path / "elsewhere" / "target.wav", frequency=500.0)
    os.symlink("real.wav", root / "alias.wav")  # another name for a file inside the root
    os.symlink(tmp_path / "elsewhere" / "target.wav", root / "link.wav")  # a file kept outside it
    (root / "metadata.csv").write_text(
        "path,caption\nreal.wav,the original\nalias.wav,the alias\nlink.wav,the linked one\n"
    )
    paths = [f.path for f in scan_audio_folder(root, progress=False).files]
    assert paths == ["alias.wav", "link.wav", "real.wav"]
    table = load_metadata(root, paths)
    assert {path: meta.get("caption") for path, meta in table.items()} == {
        "alias.wav": "the alias",
        "link.wav": "the linked one",
        "real.wav": "the original",
    }


def test_absolute_csv_paths_work_through_a_symlinked_root(tmp_path):
    write_sine(tmp_path / "store" / "a.wav")
    os.symlink(tmp_path / "store", tmp_path / "root")
    (tmp_path / "store" / "metadata.csv").write_text(
        f"path,caption\n{tmp_path / 'root' / 'a.wav'},by the link\n"
    )
    assert load_metadata(tmp_path / "root", ["a.wav"])["a.wav"] == {"caption": "by the link"}
    (tmp_path / "store" / "metadata.csv").write_text(
        f"path,caption\n{tmp_path / 'store' / 'a.wav'},by the target\n"
    )
    assert load_metadata(tmp_path / "root", ["a.wav"])["a.wav"] == {"caption": "by the target"}


def test_caption_attributes_from_columns_or_caption():
    assert metadata.caption_attributes({"caption": "organ chords in Db Major at 92 bpm"}) == {
        "bpm": 92.0,
        "key": "C# major",
    }
    assert metadata.caption_attributes({"caption": "x", "bpm": "120", "key": "a minor"}) == {
        "bpm": 120.0,
        "key": "A minor",
    }
    assert metadata.caption_attributes({"caption": "a drum beat"}) == {}


def test_keys_are_numbered_for_conditioning_in_any_spelling():
    assert len(metadata.KEYS) == 24 and metadata.KEYS[0] == "C major" and metadata.KEYS[21] == "A minor"
    assert metadata.key_index("a minor") == metadata.key_index("A Min") == 21
    assert metadata.key_index("Db major") == metadata.KEYS.index("C# major")
    assert metadata.key_index("") == metadata.key_index(None) == metadata.key_index("H dorian") == -1
    bpm, key = metadata.row_tempo_and_key({"caption": "bell arpeggio in F# minor at 140 bpm"})
    assert (bpm, metadata.KEYS[key]) == (140.0, "F# minor")
    bpm, key = metadata.row_tempo_and_key({"caption": "a drum beat"})
    assert math.isnan(bpm) and key == -1
