import os

from conftest import write_sine

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
