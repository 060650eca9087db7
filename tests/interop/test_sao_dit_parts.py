"""The DiT options that Stable Audio Open's DiT needs, each against the peer's own module
(fixtures written by experiments/interop/fixtures.py with stable-audio-tools 0.0.19)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from latentaudio.dit.model import DiT, SwiGLU
from latentaudio.interop.mapping import translate
from latentaudio.interop.stable_audio_tools import FEED_FORWARD_RULES

PARTS = Path(__file__).resolve().parents[1] / "fixtures" / "interop" / "sao_dit_parts.safetensors"


def peer_part(name: str) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    stored = load_file(str(PARTS))
    prefix = f"{name}.weights."
    weights = {k[len(prefix) :]: v for k, v in stored.items() if k.startswith(prefix)}
    return weights, stored[f"{name}.input"], stored[f"{name}.output"]


def test_swiglu_feed_forward_matches_the_peer():
    weights, x, expected = peer_part("feed_forward")
    ours = SwiGLU(16, 64)
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    ours.load_state_dict(translate(weights, FEED_FORWARD_RULES, to_ours=True, expected=shapes))
    with torch.no_grad():
        out = ours(x)
    assert float((out - expected).abs().max() / expected.abs().max()) < 1e-4


def test_a_swiglu_dit_starts_at_zero_and_counts_its_flops():
    torch.manual_seed(0)
    gelu = DiT(latent_dim=4, width=32, depth=2, heads=4)
    swiglu = DiT(latent_dim=4, width=32, depth=2, heads=4, feed_forward="swiglu")
    assert isinstance(swiglu.blocks[0].mlp, SwiGLU) and not isinstance(gelu.blocks[0].mlp, SwiGLU)
    out = swiglu(torch.randn(2, 4, 10), torch.rand(2))
    assert torch.equal(out, torch.zeros_like(out))  # adaLN-Zero holds with either feed-forward
    # one more hidden-size matrix per block: 2 * depth * frames * width * hidden more FLOPs
    assert swiglu.flops(10) - gelu.flops(10) == 2.0 * 2 * 10 * 32 * 128
    with pytest.raises(ValueError, match="feed_forward"):
        DiT(latent_dim=4, width=32, depth=2, heads=4, feed_forward="relu")
