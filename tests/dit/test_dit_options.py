"""The DiT and Conditioner options that describe Stable Audio Open's networks (their parity with
the peer is in tests/interop/test_sao_dit.py): defaults untouched, each option doing what it says."""

from __future__ import annotations

import pytest
import torch

from latentaudio.dit.conditioning import Conditioner
from latentaudio.dit.model import DiT, RotaryEmbedding, apply_rotary

SAO_LIKE = dict(
    global_cond_mode="prepend",
    rotary_dim=8,
    qk_norm=True,
    bias=False,
    io_convs=True,
    timestep_features="learned",
    cross_embed_dim=16,
    cross_kv_heads=1,
    norm_eps=1e-5,
    feed_forward="swiglu",
)


def test_the_defaults_keep_the_adaln_dit():
    dit = DiT(latent_dim=4, width=32, depth=1, heads=2, global_cond_dim=8, cross_attn_dim=8)
    keys = set(dit.state_dict())
    assert "blocks.0.adaln_modulation.1.weight" in keys and "final_layer.adaln_modulation.1.weight" in keys
    assert "x_embedder.bias" in keys and "blocks.0.attn.qkv.bias" in keys
    assert not any(
        k.startswith(("input_conv", "output_conv", "cross_embedder")) or "qk_norm" in k for k in keys
    )
    assert "t_embedder.frequencies" not in keys


def test_a_sao_like_dit_starts_at_zero_and_has_no_biases_or_adaln():
    torch.manual_seed(0)
    dit = DiT(latent_dim=4, width=32, depth=2, heads=2, global_cond_dim=8, cross_attn_dim=12, **SAO_LIKE)
    keys = set(dit.state_dict())
    assert not any("adaln" in k for k in keys)
    assert not any(
        k.endswith("bias") and "mlp" not in k and "qk_norm" not in k and "t_embedder" not in k for k in keys
    )
    assert dit.blocks[0].cross_attn.kv.weight.shape == (2 * 1 * 16, 16)  # one key/value head, after the MLP
    out = dit(
        torch.randn(2, 4, 5),
        torch.rand(2),
        torch.randn(2, 8),
        torch.randn(2, 3, 12),
        torch.ones(2, 3, dtype=bool),
    )
    assert torch.equal(out, torch.zeros_like(out))


def test_the_prepended_token_carries_time_and_global_condition():
    torch.manual_seed(0)
    dit = DiT(
        latent_dim=4, width=32, depth=1, heads=2, global_cond_dim=8, **{**SAO_LIKE, "cross_embed_dim": 0}
    )
    for parameter in dit.parameters():  # open every zero-initialised branch
        torch.nn.init.normal_(parameter, std=0.3)
    x, t = torch.randn(1, 4, 5), torch.rand(1)
    a, b = dit(x, t, torch.zeros(1, 8)), dit(x, t, torch.ones(1, 8))
    assert not torch.allclose(a, b)
    assert a.shape == x.shape


def test_partial_rotary_leaves_the_rest_of_each_head():
    cos, sin = RotaryEmbedding(4)(6)
    x = torch.randn(1, 2, 6, 8)
    rotated = apply_rotary(x, cos, sin)
    assert torch.equal(rotated[..., 4:], x[..., 4:])
    assert torch.allclose(rotated[..., :4], apply_rotary(x[..., :4], cos, sin))
    assert not torch.allclose(rotated[..., :4], x[..., :4])


@pytest.mark.parametrize(
    "options, message",
    [
        ({"global_cond_mode": "film"}, "global_cond_mode"),
        ({"rotary_dim": 3}, "rotary_dim"),
        ({"rotary_dim": 64}, "rotary_dim"),
        ({"timestep_features": "random"}, "timestep_features"),
        ({"cross_attn_dim": 8, "cross_kv_heads": 3}, "cross_kv_heads"),
    ],
)
def test_impossible_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        DiT(latent_dim=4, width=32, depth=1, heads=2, **options)


def test_number_conditions_concatenate_globally_and_append_tokens():
    torch.manual_seed(0)
    numbers = {"seconds_start": [0, 512], "seconds_total": [0, 512]}
    conditioner = Conditioner(
        global_dim=16,
        cross_dim=8,
        timing=False,
        text="t5",
        text_projection=False,
        text_max_length=4,
        numbers=numbers,
        mask_padding=False,
        uncond="zero_context",
    ).eval()
    tokens = torch.randn(2, 4, 8)
    batch = {
        "text_tokens": tokens,
        "text_mask": torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]]),
        "seconds_start": [0.0, 600.0],
        "seconds_total": [10.0, 20.0],
    }
    cond = conditioner(batch)
    start = conditioner.numbers["seconds_start"](torch.tensor([0.0, 512.0]))  # 600 clamps to 512
    assert torch.allclose(cond["global_cond"][:, :8], start)
    assert cond["cross_cond"].shape == (2, 6, 8) and bool(cond["cross_mask"].all())  # padding attended
    assert torch.equal(cond["cross_cond"][1, 1:4], torch.zeros(3, 8))  # padded text tokens are zero
    assert torch.allclose(cond["cross_cond"][:, 4], start)
    uncond = conditioner(batch, force_uncond=True)
    assert torch.equal(uncond["cross_cond"], torch.zeros_like(cond["cross_cond"]))
    assert torch.equal(uncond["global_cond"], cond["global_cond"])  # global kept
    with pytest.raises(ValueError, match="seconds_total"):
        conditioner({"seconds_start": [0.0]})
    with pytest.raises(ValueError, match="text_path"):
        conditioner({"seconds_total": [1.0], "caption": ["rain"]})
    # no prompt and no encoder: the unconditional tokens
    assert torch.equal(conditioner({"seconds_total": [1.0]})["cross_cond"][:, :4], torch.zeros(1, 4, 8))
    with pytest.raises(ValueError, match="global_dim"):
        Conditioner(global_dim=8, cross_dim=8, timing=False, numbers=numbers)
