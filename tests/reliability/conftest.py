"""The bad-file corpus: good audio mixed with broken and odd files, written at test time."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness.badfiles import BadCorpus, write_bad_corpus


@pytest.fixture
def bad_corpus(tmp_path: Path) -> BadCorpus:
    return write_bad_corpus(tmp_path / "audio", good_files=6, seconds=0.5)
