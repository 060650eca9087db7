"""Per-file metadata: one ``metadata.csv`` at the data root and/or ``name.json`` sidecars.

``metadata.csv`` has a ``path`` column (relative to the data root) and any of
``caption``, ``label``, ``start``, ...; a sidecar ``clip.json`` beside ``clip.wav`` holds
the same keys and wins over the CSV. A path that points outside the data root is refused.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

from latentaudio.data.scan import printable

log = logging.getLogger(__name__)

METADATA_CSV = "metadata.csv"


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
