"""LoRA adapters on tiny bundles: scale 0 is the base bit for bit, merged equals applied, new labels,
and an adapter refuses a base it was not trained on."""

from __future__ import annotations

import pytest
import torch
from inference.tiny_bundles import LABELS, tiny_bundles, tiny_dit_bundle

from latentaudio.bundle import load_bundle
from latentaudio.dit.denoiser import Denoiser
from latentaudio.dit.lora import (
    AdapterError,
    AdapterSpec,
    adapter_state,
    merge_into_bundle,
    prepare_training,
    save_adapter,
    trainable_count,
)
from latentaudio.pipeline import Pipeline


def make_adapter(dit_path, directory, labels=(), targets=("attention", "mlp"), seed=1, **spec_options) -> str:
    """An adapter as training leaves it: random LoRA weights (B too, else it changes nothing)."""
    base = load_bundle(dit_path, kind="dit")
    denoiser = Denoiser(base.build("dit"), base.build("conditioner"))
    spec = AdapterSpec(rank=4, alpha=4.0, targets=list(targets), labels=list(labels), **spec_options)
    prepare_training(denoiser, spec, base_labels=len(LABELS))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in denoiser.parameters():
            if parameter.requires_grad:
                parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    meta = {"base_hash": base.hash, "vae_hash": base.meta["vae_hash"], "step": 0}
    save_adapter(directory, denoiser, spec, len(LABELS), meta)
    return str(directory)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return tiny_bundles(tmp_path_factory.mktemp("bundles"))


def clips(pipeline, label="low", seed=3):
    return pipeline.generate(n=2, seconds=0.1, label=label, steps=4, seed=seed, cfg_scale=2.0)


def test_training_freezes_the_base_and_trains_only_the_adapter_and_new_rows(bundles):
    _, dit = bundles
    base = load_bundle(dit, kind="dit")
    denoiser = Denoiser(base.build("dit"), base.build("conditioner"))
    spec = AdapterSpec(rank=4, targets=["attention", "mlp", "conditioning"], labels=["mid"])
    prepare_training(denoiser, spec, base_labels=len(LABELS))
    trainable = {n for n, p in denoiser.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n or n.endswith("label.embedding.new") for n in trainable)
    assert any("adaln_modulation" in n for n in trainable)  # the conditioning group took effect
    count = trainable_count(denoiser, spec)
    assert count == sum(t.numel() for t in adapter_state(denoiser, "adapter").values()) + 16
    # a training step moves the adapter and the new label's row, nothing of the base
    before = {k: v.clone() for k, v in denoiser.state_dict().items()}
    optimizer = torch.optim.AdamW(
        [p for p in denoiser.parameters() if p.requires_grad], lr=0.1, weight_decay=0.1
    )
    batch = {"seconds_total": torch.full((2,), 0.1), "label": torch.tensor([2, 0]), "caption": ["a", "b"]}
    for _ in range(2):
        loss = denoiser(torch.randn(2, 3, 8), torch.rand(2), batch).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = denoiser.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(".lora_" in k for k in changed - {"conditioner.label.embedding.new"})
    assert (
        "conditioner.label.embedding.new" in changed
    )  # the new label learnt; known rows and null row did not


def test_scale_zero_is_the_base_exactly_and_scales_move_the_output(bundles, tmp_path):
    vae, dit = bundles
    adapter = make_adapter(dit, tmp_path / "a")
    base = clips(Pipeline.from_bundles(vae, dit))
    assert torch.equal(clips(Pipeline.from_bundles(vae, dit, lora=[adapter], lora_scale=0.0)), base)
    full = Pipeline.from_bundles(vae, dit, lora=[adapter], lora_scale=1.0)
    assert not torch.allclose(clips(full), base, atol=1e-4)
    full.set_adapter_scale(full.adapters[0]["name"], 0.0)
    assert torch.equal(clips(full), base)


def test_merged_equals_applied_with_two_adapters_and_new_labels(bundles, tmp_path):
    vae, dit = bundles
    first = make_adapter(dit, tmp_path / "a", labels=["mid"])
    second = make_adapter(dit, tmp_path / "b", labels=["top"], targets=("attention",), seed=2, dora=True)
    applied = Pipeline.from_bundles(vae, dit, lora=[first, second], lora_scale=[0.8, 0.5])
    assert applied.labels == [*LABELS, "mid", "top"]
    merged_hash = merge_into_bundle(str(dit), [(first, 0.8), (second, 0.5)], str(tmp_path / "merged"))
    merged = Pipeline.from_bundles(vae, tmp_path / "merged")
    assert merged.bundle.hash == merged_hash and merged.labels == applied.labels
    assert merged.bundle.meta["merged"]["base_hash"] == load_bundle(dit).hash
    for label in ("low", "mid", "top"):
        torch.testing.assert_close(clips(merged, label), clips(applied, label), atol=1e-5, rtol=1e-4)
    # each new label is its own condition
    embedded = applied.denoiser.conditioner.label(torch.tensor([2, 3]))
    assert not torch.allclose(embedded[0], embedded[1])


def test_an_adapter_refuses_a_foreign_base_naming_both_hashes(bundles, tmp_path):
    vae, dit = bundles
    adapter = make_adapter(dit, tmp_path / "a")
    other = tmp_path / "other"
    tiny_dit_bundle(other, load_bundle(vae).meta["hash"], latent_std=2.0)
    with pytest.raises(AdapterError) as error:
        Pipeline.from_bundles(vae, other, lora=[adapter])
    assert load_bundle(dit).hash in str(error.value) and load_bundle(other).hash in str(error.value)


def test_two_adapters_adding_the_same_label_are_refused(bundles, tmp_path):
    vae, dit = bundles
    first = make_adapter(dit, tmp_path / "a", labels=["mid"])
    second = make_adapter(dit, tmp_path / "b", labels=["mid"], seed=2)
    with pytest.raises(AdapterError, match="already knows"):
        Pipeline.from_bundles(vae, dit, lora=[first, second])


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"rank": 0}, "rank=0"),
        ({"targets": ["attn"]}, "choose one or more of attention"),
        ({"alpha": -1}, "alpha=-1"),
        ({"rank": 4, "bias": True}, "unknown adapter settings"),
    ],
)
def test_bad_adapter_settings_name_the_fix(settings, message):
    with pytest.raises(AdapterError, match=message):
        AdapterSpec.from_config(settings, "lora")
