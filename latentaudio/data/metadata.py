"""Per-file metadata: one ``metadata.csv`` at the data root and/or ``name.json`` sidecars.

``metadata.csv`` has a ``path`` column (relative to the data root) and any of
``caption``, ``label``, ``start``, ...; a sidecar ``clip.json`` beside ``clip.wav`` holds
the same keys and wins over the CSV. A path that points outside the data root is refused.

Musical attributes: :func:`caption_attributes` reads a row's tempo (``bpm``) and key, from
``bpm`` / ``key`` columns or from its caption ("... in A minor at 120 bpm"); keys are named
as in :data:`KEYS` and numbered by :func:`key_index` for conditioning.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

from latentaudio.data.scan import printable

log = logging.getLogger(__name__)

METADATA_CSV = "metadata.csv"
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
KEYS = tuple(f"{note} {mode}" for mode in ("major", "minor") for note in NOTE_NAMES)  # 24 keys
_FLATS = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}


def load_metadata(root: str | os.PathLike, relative_paths: list[str]) -> dict[str, dict]:
    """Metadata for each of ``relative_paths`` (files without any get an empty dict)."""
    root = Path(root).expanduser()
    wanted = {os.path.normpath(p): p for p in relative_paths}
    table: dict[str, dict] = {p: {} for p in relative_paths}
    csv_path = root / METADATA_CSV
    if csv_path.exists():
        for row_number, row in enumerate(_read_csv(csv_path), start=2):
            raw = (row.pop("path", None) or "").strip()
            if not raw:
                log.warning("%s line %d: no path, row ignored", csv_path, row_number)
                continue
            relative = _inside_root(root, raw)
            if relative is None:
                log.warning(
                    "%s line %d: path %r points outside %s, row refused", csv_path, row_number, raw, root
                )
                continue
            if relative in wanted:
                table[wanted[relative]].update({k: v for k, v in row.items() if k and v not in (None, "")})
    for relative in relative_paths:
        sidecar = (root / relative).with_suffix(".json")
        if sidecar.exists():
            try:
                data = json.loads(sidecar.read_text())
            except (OSError, ValueError) as error:
                log.warning("skipping metadata %s: %s", printable(sidecar), error)
                continue
            if isinstance(data, dict):
                table[relative].update(data)
            else:
                log.warning("skipping metadata %s: expected a JSON object", printable(sidecar))
    return table


def label_vocabulary(metadata: dict[str, dict]) -> list[str]:
    """Sorted distinct labels; a label's index in this list is its class id."""
    return sorted({str(m["label"]) for m in metadata.values() if m.get("label") not in (None, "")})


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _inside_root(root: Path, raw: str) -> str | None:
    """``raw`` relative to ``root``, or None when it points outside.

    Lexical, like the scan: a symlinked file keeps its own name rather than its target's. An
    absolute ``raw`` may spell the root either as given or with its own symlinks resolved.
    """
    for base in dict.fromkeys([os.path.abspath(root), os.path.realpath(root)]):
        relative = os.path.normpath(os.path.relpath(os.path.join(base, raw), base))
        if relative != os.curdir and relative != os.pardir and not relative.startswith(os.pardir + os.sep):
            return relative
    return None


def normalise_key(key: str) -> str:
    """``"c# Minor"``, ``"Db major"`` -> ``"C# minor"``; ``""`` for anything that is not a key."""
    match = re.fullmatch(r"\s*([A-Ga-g])([#b]?)\s*(major|minor|maj|min)\s*", key or "", flags=re.IGNORECASE)
    if not match:
        return ""
    note = match.group(1).upper() + match.group(2)
    note = _FLATS.get(note, note)
    if note not in NOTE_NAMES:  # Cb, Fb, E#, B#
        index = (NOTE_NAMES.index(note[0]) + (1 if note.endswith("#") else -1)) % 12
        note = NOTE_NAMES[index]
    mode = "major" if match.group(3).lower().startswith("maj") else "minor"
    return f"{note} {mode}"


def caption_attributes(row: Mapping[str, str]) -> dict:
    """The asked ``bpm`` (float) and ``key`` (normalised) of a metadata row, where it has them:
    from ``bpm`` / ``key`` columns, else from its caption ("... in A minor at 120 bpm")."""
    out: dict = {}
    caption = str(row.get("caption") or "")
    bpm = str(row.get("bpm") or "")
    if not bpm:
        found = re.search(r"(\d+(?:\.\d+)?)\s*bpm", caption, flags=re.IGNORECASE)
        bpm = found.group(1) if found else ""
    try:
        if bpm and float(bpm) > 0:
            out["bpm"] = float(bpm)
    except ValueError:
        pass
    key = normalise_key(str(row.get("key") or ""))
    if not key:
        found = re.search(r"\b([A-G][#b]?\s+(?:major|minor))\b", caption, flags=re.IGNORECASE)
        key = normalise_key(found.group(1)) if found else ""
    if key:
        out["key"] = key
    return out


def key_index(key: str | None) -> int:
    """The key's position in :data:`KEYS` (any spelling :func:`normalise_key` reads), -1 for none."""
    normal = normalise_key(key or "")
    return KEYS.index(normal) if normal else -1


def row_tempo_and_key(row: Mapping[str, str]) -> tuple[float, int]:
    """(bpm, key index) of a metadata row for conditioning: NaN and -1 where it has none."""
    attributes = caption_attributes(row)
    return float(attributes.get("bpm", math.nan)), key_index(attributes.get("key"))
