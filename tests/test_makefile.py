"""The Makefile's help: every target listed, colour codes only on a terminal."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_help_writes_no_colour_codes_into_a_pipe():
    out = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "\033" not in out
    targets = [
        line.split(":")[0]
        for line in (ROOT / "Makefile").read_text().splitlines()
        if ": " in line and "## " in line
    ]
    listed = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert listed == targets and "reconstruct" in listed and "evaluate" in listed
