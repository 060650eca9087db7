"""make finetune end to end on tiny models: a DiT trained on two labels, adapted to a third."""

from __future__ import annotations

import pytest
import torch
from apps_helpers import compose_app, labelled_tones

from latentaudio.apps.common import ConfigError
from latentaudio.apps.merge_lora import merge_lora
from latentaudio.apps.train_diffusion import train
from latentaudio.bundle import load_bundle
from latentaudio.pipeline import Pipeline


@pytest.fixture(scope="module")
def base(tiny_base, tmp_path_factory):
    vae, dit, _ = tiny_base
    new = labelled_tones(tmp_path_factory.mktemp("new_audio"), [("mid", 450 + 10 * i) for i in range(8)])
    return vae, dit, new


def finetune_overrides(vae, dit, root, steps=4):
    return [
        f"vae={vae}",
        f"dit={dit}",
        f"data.root={root}",
        "data.batch_size=4",
        "data.val_fraction=0.25",
        "debug=fast",
        f"trainer.max_steps={steps}",
        "callbacks.model_checkpoint.every_n_train_steps=2",
        "lora.rank=2",
        "optim.warmup_steps=0",
    ]


def test_finetune_trains_an_adapter_with_a_new_label_and_leaves_the_base_alone(base, tmp_path):
    vae, dit, new = base
    base_hash = load_bundle(dit).hash
    train(compose_app("finetune", tmp_path / "ft", finetune_overrides(vae, dit, new)))
    adapter = load_bundle(tmp_path / "ft" / "export", kind="lora")
    assert adapter.meta["base_hash"] == base_hash and adapter.meta["labels"] == ["mid"]
    assert all(".lora_" in k or k.endswith("new_rows") for k in adapter.tensors)
    assert load_bundle(dit).hash == base_hash  # the base bundle is untouched
    # checkpoints keep only what trains: no frozen base weight
    checkpoint = torch.load(tmp_path / "ft" / "checkpoints" / "last.ckpt", weights_only=True)
    weights = [k for k in checkpoint["state_dict"] if k.startswith("denoiser.")]
    assert weights and all(".lora_" in k or k.endswith("embedding.new") for k in weights)

    pipeline = Pipeline.from_bundles(vae, dit, lora=[tmp_path / "ft" / "export"], lora_scale=[0.8])
    assert pipeline.labels == ["high", "low", "mid"]
    assert pipeline.generate(n=1, seconds=0.2, label="mid", steps=3).shape[-1] > 0
    merge_lora(
        compose_app(
            "merge_lora",
            tmp_path / "m",
            [f"dit={dit}", f"lora={tmp_path / 'ft' / 'export'}", f"output={tmp_path / 'merged'}"],
        )
    )
    assert load_bundle(tmp_path / "merged", kind="dit").meta["labels"] == ["high", "low", "mid"]


def test_finetune_resumes_mid_run(base, tmp_path):
    vae, dit, new = base
    train(compose_app("finetune", tmp_path / "straight", finetune_overrides(vae, dit, new, steps=4)))
    train(compose_app("finetune", tmp_path / "resumed", finetune_overrides(vae, dit, new, steps=2)))
    halfway = load_bundle(tmp_path / "resumed" / "export", kind="lora").tensors
    train(
        compose_app(
            "finetune", tmp_path / "resumed", finetune_overrides(vae, dit, new, steps=4) + ["ckpt_path=last"]
        )
    )
    straight = load_bundle(tmp_path / "straight" / "export", kind="lora")
    resumed = load_bundle(tmp_path / "resumed" / "export", kind="lora")
    assert resumed.meta["step"] == 4 and resumed.meta["base_hash"] == straight.meta["base_hash"]

    # the noise draws after a restart differ from an unbroken run's, so the adapters are not equal;
    # but the resumed one went on from step 2 towards where the unbroken run ended
    def distance(tensors):
        return sum(float((tensors[k] - v).abs().sum()) for k, v in straight.tensors.items())

    assert 0 < distance(resumed.tensors) < 0.7 * distance(halfway)  # 0: trained again from scratch


def test_finetune_refuses_a_missing_base_before_training(base, tmp_path):
    vae, _, new = base
    cfg = compose_app("finetune", tmp_path / "ft", finetune_overrides(vae, "", new))
    with pytest.raises(ConfigError, match="dit=<path> is required"):
        train(cfg)
