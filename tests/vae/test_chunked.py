"""Chunked coding against one-piece coding, on a randomly initialised tiny VAE (hop 8).

Its decoder sees about 19 latent frames either side, so a 32-frame overlap (8 frames thrown
away at each cut edge) is not exact: the measured error there is about 3e-4 relative L2 and
6e-4 max abs on a peak of 0.67. A 64-frame overlap is exact up to float rounding.
"""

import pytest
import torch

from latentaudio.vae import AudioVAE, decode_chunked, encode_chunked
from latentaudio.vae.chunked import _chunk_bounds

FRAMES = 301


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return AudioVAE(channels=2, base_channels=8, channel_mults=(1, 2), strides=(2, 4), latent_dim=4).eval()


@pytest.fixture(scope="module")
def latents():
    return torch.randn(1, 4, FRAMES, generator=torch.Generator().manual_seed(1))


def relative_error(estimate, reference):
    return ((estimate - reference).norm() / reference.norm()).item()


def test_chunk_bounds_overlap_exactly_and_cover_everything():
    bounds = _chunk_bounds(301, 64, 32)
    assert bounds[0][0] == 0 and bounds[-1][1] == 301
    assert all(b[0] == a[1] - 32 for a, b in zip(bounds, bounds[1:]))
    assert _chunk_bounds(50, 64, 32) == [(0, 50)]
    with pytest.raises(ValueError):
        _chunk_bounds(301, 64, 40)


def test_decode_chunked_matches_one_piece_decode(vae, latents):
    length = FRAMES * vae.hop - 3
    with torch.inference_mode():
        full = vae.decode(latents, length)
        chunked = decode_chunked(vae, latents, chunk_frames=64, overlap_frames=32, length=length)
        exact = decode_chunked(vae, latents, chunk_frames=128, overlap_frames=64, length=length)
        butted = decode_chunked(vae, latents, chunk_frames=64, overlap_frames=0, length=length)
    assert chunked.shape == full.shape == (1, 2, length)
    assert relative_error(chunked, full) < 1e-2
    assert (chunked - full).abs().max() < 1e-2 * full.abs().max()
    assert (exact - full).abs().max() < 1e-5
    # Control: chunks butted together without overlap are visibly wrong, so the test can fail.
    assert relative_error(butted, full) > 5e-2


def test_decode_chunked_has_no_clicks_at_chunk_boundaries(vae, latents):
    with torch.no_grad():
        full = vae.decode(latents)
        chunked = decode_chunked(vae, latents, chunk_frames=64, overlap_frames=32)
        butted = decode_chunked(vae, latents, chunk_frames=64, overlap_frames=0)
    # Samples within 4 frames of each crossfade's centre.
    near_seam = torch.zeros(full.shape[-1] - 1, dtype=torch.bool)
    for start, _ in _chunk_bounds(FRAMES, 64, 32)[1:]:
        centre = (start + 16) * vae.hop
        near_seam[centre - 4 * vae.hop : centre + 4 * vae.hop] = True
    jumps = chunked.diff(dim=-1).abs().amax(dim=(0, 1))  # (T - 1,)
    # The untrained decoder's output is noise-like, so compare the largest sample-to-sample
    # step at the seams with the largest inside chunks: at most 1.25x (measured: 0.68 vs 0.87).
    assert jumps[near_seam].max() <= 1.25 * jumps[~near_seam].max()
    # The sharper check: chunking changes any step by under 1% of the signal's largest step
    # (measured: about 0.1%); butting chunks together changes steps by over 10%.
    largest_step = full.diff(dim=-1).abs().max()
    assert (chunked.diff(dim=-1) - full.diff(dim=-1)).abs().max() < 1e-2 * largest_step
    assert (butted.diff(dim=-1) - full.diff(dim=-1)).abs().max() > 1e-1 * largest_step


def test_encode_chunked_matches_one_piece_encode(vae):
    audio = torch.randn(1, 2, FRAMES * vae.hop - 5, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        full = vae.encode(audio)
        chunked = encode_chunked(vae, audio, chunk_frames=64, overlap_frames=32)
        exact = encode_chunked(vae, audio, chunk_frames=128, overlap_frames=64)
        butted = encode_chunked(vae, audio, chunk_frames=64, overlap_frames=0)
    assert chunked.shape == full.shape == (1, 4, FRAMES)
    assert relative_error(chunked, full) < 1e-2
    assert (chunked - full).abs().max() < 1e-2 * full.abs().max()
    assert (exact - full).abs().max() < 1e-5
    assert relative_error(butted, full) > 5e-2


def test_short_input_is_one_chunk(vae):
    latents = torch.randn(2, 4, 10)
    with torch.no_grad():
        torch.testing.assert_close(decode_chunked(vae, latents, 64, 16, length=75), vae.decode(latents, 75))


def test_a_sub_band_vae_codes_in_chunks_as_in_one_piece(latents):
    torch.manual_seed(0)
    vae = AudioVAE(
        channels=2, base_channels=8, channel_mults=(1,), strides=(2,), latent_dim=4, bands=4
    ).eval()
    assert vae.hop == 8
    length = FRAMES * vae.hop - 3
    with torch.inference_mode():
        full = vae.decode(latents, length)
        # its residual units run at 2 samples a frame, so it sees about 45 frames either side
        chunked = decode_chunked(vae, latents, chunk_frames=256, overlap_frames=128, length=length)
        audio = full.clone()
        assert (encode_chunked(vae, audio, 256, 128) - vae.encode(audio)).abs().max() < 1e-4
    assert (chunked - full).abs().max() < 1e-4 * full.abs().max()


@pytest.mark.parametrize("istft_hop", [8, 2])
def test_a_vae_with_an_istft_branch_decodes_in_chunks_as_in_one_piece(latents, istft_hop):
    torch.manual_seed(0)
    vae = AudioVAE(
        channels=2, base_channels=8, channel_mults=(1, 2), strides=(2, 4), latent_dim=4, istft_hop=istft_hop
    ).eval()
    with torch.no_grad():
        vae.istft_head.proj.weight.normal_(0.0, 0.3)  # a trained branch, not the zero it starts at
    length = FRAMES * vae.hop - 3
    with torch.inference_mode():
        full = vae.decode(latents, length)
        exact = decode_chunked(vae, latents, chunk_frames=128, overlap_frames=64, length=length)
        head, vae.istft_head = vae.istft_head, None
        without = vae.decode(latents, length)
        vae.istft_head = head
    assert relative_error(without, full) > 0.1  # the branch is a real part of the output
    assert (exact - full).abs().max() < 1e-5 * full.abs().max()
