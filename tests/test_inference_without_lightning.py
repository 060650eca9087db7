"""Inference (the pipeline, the autoencoder, the samplers) runs where Lightning is not installed."""

import subprocess
import sys
import textwrap
from pathlib import Path

from inference.tiny_bundles import tiny_bundles

BLOCK_LIGHTNING = textwrap.dedent(
    """
    import sys

    class BlockLightning:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("pytorch_lightning", "lightning", "lightning_fabric"):
                raise ImportError(f"{name} is blocked: inference must not import Lightning")
            return None

    sys.meta_path.insert(0, BlockLightning())
    """
)


def run_without_lightning(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_LIGHTNING + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )


def test_the_blocker_blocks_lightning():
    result = run_without_lightning("import pytorch_lightning")
    assert result.returncode != 0 and "blocked" in result.stderr


def test_pipeline_generates_with_lightning_blocked(tmp_path):
    vae, dit = tiny_bundles(tmp_path)
    result = run_without_lightning(
        f"""
        import latentaudio.autoencoder, latentaudio.dit.samplers, latentaudio.editing
        from latentaudio.pipeline import Pipeline

        pipe = Pipeline.from_bundles({str(vae)!r}, {str(dit)!r})
        audio = pipe.generate(seconds=0.02, steps=2, cfg_scale=2.0, prompt="a", negative="b")
        assert audio.shape == (1, 1, 320), audio.shape
        assert not any(name.split(".")[0] in ("pytorch_lightning", "lightning") for name in sys.modules)
        print("ok")
        """
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
