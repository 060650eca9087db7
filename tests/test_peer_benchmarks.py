"""The peer benchmarks compare equal networks: stable-audio-tools' Oobleck VAE codes the waveform,
so our side must too, whatever layout the demo recipe uses (it codes sub-bands since 2026-12-04)."""

import math

import pytest

from experiments.benchmarks import peer, quality


def test_the_speed_benchmarks_vae_is_ours_at_the_peers_layout():
    vae, _ = peer.ours_vae()
    assert vae.bands == 1
    assert vae.hop == math.prod(peer.VAE_SIZE["strides"]) == 256


def test_the_quality_benchmark_trains_the_demo_recipe_in_the_waveform_layout():
    recipe = quality.demo_recipe()
    assert recipe["vae"]["bands"] == 1
    assert math.prod(recipe["vae"]["strides"]) == 256  # the hop the peer is built with from it


def test_the_equal_quality_budget_is_read_from_a_training_log(tmp_path):
    from experiments.benchmarks.fewstep_peer import training_seconds

    (tmp_path / "train_diffusion.log").write_text(
        "[2026-12-04 18:55:21,370][latentaudio.data.scan][INFO] data/demo: 320 usable audio files\n"
        "[2026-12-04 19:00:54,708][latentaudio.training.callbacks][INFO] exported bundle at step 1500\n"
        "[2026-12-04 19:02:42,984][latentaudio][INFO] done: {'train/loss': 0.3987}\n"
    )
    assert training_seconds(tmp_path) == 441.0


def test_an_unfinished_training_log_is_refused_with_the_way_out(tmp_path):
    from experiments.benchmarks.fewstep_peer import training_seconds

    (tmp_path / "train_diffusion.log").write_text("[2026-12-04 18:55:21,370][latentaudio][INFO] starting\n")
    with pytest.raises(SystemExit, match="budget=SECONDS"):
        training_seconds(tmp_path)


def test_the_peer_is_timed_at_its_fewest_steps_as_good_as_ours_or_its_most():
    from experiments.benchmarks.fewstep_peer import fewest_as_good

    def score(accuracy, fd):
        return {"accuracy": accuracy, "fd_mfcc": fd}

    scores = {"ours": score(0.70, 300), "peer_8": score(0.72, 350), "peer_16": score(0.71, 290)}
    scores["peer_50"] = score(0.75, 250)
    assert fewest_as_good(scores) == (16, True)  # 8 steps has the labels but not the FD
    scores["ours"] = score(0.80, 200)
    assert fewest_as_good(scores) == (50, False)


def test_rescoring_the_kept_peer_before_one_is_kept_says_how_to_make_it(tmp_path):
    from experiments.benchmarks.fewstep_peer import equal_quality_pair, kept_side

    with pytest.raises(SystemExit, match="run this script once without it"):
        kept_side({"keep": tmp_path, "cfg_scale": 3.0})
    assert equal_quality_pair(tmp_path, "outputs/demo/vae/export", 4, 128) is None  # bench-peer skips its row


def test_rescored_peer_steps_join_the_kept_scores_only_from_the_same_noise_and_clips(tmp_path):
    import json

    from experiments.benchmarks.fewstep_peer import add_scores

    kept = {"seed": 0, "scores": {"ours": {"accuracy": 0.66}, "peer_8": {"accuracy": 0.71}}, "seconds": {}}
    (tmp_path / "scores.json").write_text(json.dumps(kept))
    new = {"ours": {"accuracy": 0.5}, "peer_6": {"accuracy": 0.66}}
    speed = {"seconds": {"ours": (0.12, 0.1, 0.2), "peer_6": (0.31, 0.3, 0.4)}}
    add_scores({"keep": tmp_path, "per_label": 24}, new, speed, seed=1)  # other noise: not comparable
    assert json.loads((tmp_path / "scores.json").read_text()) == kept
    add_scores({"keep": tmp_path, "per_label": 2}, new, speed, seed=0)  # fewer clips: not comparable
    assert json.loads((tmp_path / "scores.json").read_text()) == kept
    add_scores({"keep": tmp_path, "per_label": 24}, new, speed, seed=0)
    merged = json.loads((tmp_path / "scores.json").read_text())
    assert merged["scores"] == {
        "ours": {"accuracy": 0.66},
        "peer_8": {"accuracy": 0.71},
        "peer_6": {"accuracy": 0.66},
    }
    assert merged["seconds"] == {"peer_6": 0.31}


def test_bench_peer_reports_sampling_with_the_decode_make_generate_uses_beside_fp32(tmp_path, monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr(peer, "versions", lambda: "torch (test)")

    def row(ratio: float, *others: str) -> dict:
        seconds = {side: (1.0, 0.9, 1.1) for side in ("ours", "peer", *others)}
        ratios = {side: (ratio, ratio - 0.1, ratio + 0.1) for side in ("peer", *others)}
        return {"seconds": seconds, "ratio": ratios, "cpu_share": 1.0, "steal": 0.0, "work_seconds": 8.0}

    results = {
        "vae_train": row(1.35, "peer_our_loss"),
        "vae_train_bf16": row(1.85, "peer_bf16"),
        "dit_train": row(1.55),
        "sampling": row(1.20),
        "sampling_bf16": row(1.27, "peer_bf16"),
        "sampling_equal_quality": row(3.12),
        "sampling_equal_quality_fp32": row(3.01),
    }
    info = {
        "vae_parameters": {"ours": 1, "peer": 1},
        "dit_parameters": {"ours": 1, "peer": 1},
        "equal_quality": SimpleNamespace(steps=7, what="ours against the kept peer"),
    }
    args = {"warmup": 3, "rounds": 15, "steps": 3}
    text = peer.write_results({"results": results, "info": info}, args, tmp_path / "results.md")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "x** (" in line]
    titles = [line.split(" | ")[0] for line in rows]
    at = titles.index(f"| sampling, {peer.SAMPLE_STEPS} steps + decode (x realtime)")
    assert "ours bf16, peer fp32" in titles[at + 1] and "**1.27x**" in rows[at + 1]
    assert "both bf16" in titles[at + 2]
    assert "decode as `make generate` does" in titles[-2] and "**3.12x**" in rows[-2]
    assert "fp32 decode" in titles[-1] and "**3.01x**" in rows[-1]
    assert "peer 7 steps" in titles[-1]
