"""The peer benchmarks compare equal networks: stable-audio-tools' Oobleck VAE codes the waveform,
so our side must too, whatever layout the demo recipe uses (it codes sub-bands since 2026-12-04)."""

import math

from experiments.benchmarks import peer, quality


def test_the_speed_benchmarks_vae_is_ours_at_the_peers_layout():
    vae, _ = peer.ours_vae()
    assert vae.bands == 1
    assert vae.hop == math.prod(peer.VAE_SIZE["strides"]) == 256


def test_the_quality_benchmark_trains_the_demo_recipe_in_the_waveform_layout():
    recipe = quality.demo_recipe()
    assert recipe["vae"]["bands"] == 1
    assert math.prod(recipe["vae"]["strides"]) == 256  # the hop the peer is built with from it
