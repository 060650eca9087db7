"""Stable Audio Open's DiT and conditioners imported as our DiT bundle, against outputs of the peer's
own code (fixtures by experiments/interop/fixtures.py: SAO 1.0's and Small's structure, scaled down)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from latentaudio.bundle import load_bundle
from latentaudio.dit.denoiser import Denoiser
from latentaudio.interop.sat_dit import dit_options, import_dit
from latentaudio.interop.stable_audio_tools import FormatError, import_vae

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "interop"
CONF = Path(__file__).resolve().parents[2] / "conf" / "model" / "dit"
STRUCTURES = ("sao_1_0", "sao_small")
PUBLISHED = {  # (embed_dim, depth, num_heads, cond_dim, preset)
    "sao_1_0": (1536, 24, 24, 768, "sao_open_1_0"),
    "sao_small": (1024, 16, 8, 768, "sao_open_small"),
}


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


def files(name: str) -> tuple[Path, Path]:
    return FIXTURES / name / "model.safetensors", FIXTURES / name / "model_config.json"


@pytest.fixture(scope="module", params=STRUCTURES)
def imported(request, tmp_path_factory):
    name = request.param
    folder = tmp_path_factory.mktemp(name)
    checkpoint, config = files(name)
    import_vae(checkpoint, config, folder / "vae")
    report = import_dit(checkpoint, config, folder / "dit", folder / "vae")
    bundle = load_bundle(folder / "dit", kind="dit")
    denoiser = Denoiser(bundle.build("dit"), bundle.build("conditioner")).eval()
    return name, folder, report, denoiser, load_file(str(FIXTURES / name / "io.safetensors"))


def batch_of(io: dict) -> dict:
    return {k: io[k] for k in ("text_tokens", "text_mask", "seconds_start", "seconds_total")}


def test_conditioners_and_forward_match_the_peer(imported):
    _, _, report, denoiser, io = imported
    assert report.constants == 7  # 2 blocks x 3 LayerNorm biases, and the rotary frequencies
    with torch.no_grad():
        cond = denoiser.conditioner(batch_of(io))
        out = denoiser(io["x"], io["t"], batch_of(io))
        guided = denoiser.guided(io["x"], io["t"], batch_of(io), cfg_scale=3.0)
    assert relative_error(cond["global_cond"], io["global_cond"]) < 1e-4
    assert relative_error(cond["cross_cond"], io["cross_cond"]) < 1e-4
    assert relative_error(out, io["output"]) < 1e-4
    assert relative_error(guided, io["guided"]) < 1e-4


def test_the_bundle_ties_the_vae_and_keeps_their_settings(imported):
    name, folder, _, _, _ = imported
    bundle = load_bundle(folder / "dit", kind="dit")
    meta = bundle.meta
    assert meta["vae_hash"] == load_bundle(folder / "vae", kind="vae").hash
    assert meta["latent_statistics"]["std"] == [1.0] * 8
    assert meta["objective"]["name"] == ("v" if name == "sao_1_0" else "rectified_flow")
    assert meta["text_encoder"] == {"model": "t5-base", "path": None}
    assert meta["crop_frames"] == 64  # sample_size 2048 x 64
    assert bundle.config["conditioner"]["uncond"] == "zero_context"


@pytest.mark.parametrize("name", STRUCTURES)
def test_the_presets_are_what_the_published_configs_import_as(name):
    width, depth, heads, cond_dim, preset = PUBLISHED[name]
    config = json.loads(files(name)[1].read_text())
    section = config["model"]["diffusion"]["config"]
    numbers = len(config["model"]["diffusion"]["global_cond_ids"])
    section.update(embed_dim=width, depth=depth, num_heads=heads, cond_token_dim=cond_dim)
    section.update(global_cond_dim=numbers * cond_dim)
    config["model"]["conditioning"]["cond_dim"] = cond_dim
    dit, _, _ = dit_options(config)
    shipped = yaml.safe_load((CONF / f"{preset}.yaml").read_text())
    for key, value in shipped.items():
        assert dit[key] == value, key


def edited(tmp_path: Path, name: str, edit) -> Path:
    tensors = load_file(str(files(name)[0]))
    edit(tensors)
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path))
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.update({"model.model.extra.weight": torch.zeros(2)}), "no mapping rule"),
        (lambda t: t.pop("model.model.to_global_embed.0.weight"), "lacks"),
        (lambda t: t["model.model.transformer.layers.0.ff_norm.beta"].fill_(0.1), "not zero"),
        (lambda t: t.update({"model_ema.weight": torch.zeros(2)}), "no part we import"),
    ],
    ids=["extra", "missing", "beta", "ema"],
)
def test_a_tensor_we_cannot_place_is_refused(tmp_path, edit, message):
    vae = tmp_path / "vae"
    import_vae(*files("sao_1_0"), vae)
    with pytest.raises(FormatError, match=message):
        import_dit(edited(tmp_path, "sao_1_0", edit), files("sao_1_0")[1], tmp_path / "dit", vae)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["config"].update(global_cond_type="adaLN"), "global_cond_type"),
        (lambda d: d["config"].update(attn_kwargs={"qk_norm": "l2"}), "qk_norm"),
        (lambda d: d["config"].update(num_heads=8), "rotary width"),
        (lambda d: d.update(global_cond_ids=["seconds_total"]), "global_cond_ids"),
        (lambda d: d["config"].update(conformer=True), "conformer"),
    ],
    ids=["adaln", "l2", "heads", "ids", "conformer"],
)
def test_an_architecture_our_options_cannot_express_is_refused(edit, message):
    config = json.loads(files("sao_1_0")[1].read_text())
    edit(config["model"]["diffusion"])
    with pytest.raises(FormatError, match=message):
        dit_options(config)


def test_the_app_imports_both_and_reports(tmp_path):
    from apps_helpers import compose_app

    from latentaudio.apps.import_sat import import_sat

    checkpoint, config = files("sao_small")
    overrides = [f"checkpoint={checkpoint}", f"config={config}", f"output={tmp_path / 'out'}"]
    vae_report, dit_report = import_sat(compose_app("import_sat", tmp_path / "run", overrides))
    assert load_bundle(tmp_path / "out" / "dit", kind="dit").hash == dit_report.hash
    assert "mapped all" in dit_report.summary() and "t5-base" in dit_report.summary()
    assert dit_report.tensors + dit_report.constants + vae_report.tensors == len(load_file(str(checkpoint)))


def test_export_round_trips_exactly(imported, tmp_path):
    from apps_helpers import compose_app

    from latentaudio.apps.export_sat import export_sat
    from latentaudio.interop.stable_audio_tools import read_model_config

    name, folder, report, _, _ = imported
    overrides = [f"vae={folder / 'vae'}", f"dit={folder / 'dit'}", f"output={tmp_path / 'exported'}"]
    exported = export_sat(compose_app("export_sat", tmp_path / "run", overrides))
    config = read_model_config(exported / "model_config.json")
    original = json.loads(files(name)[1].read_text())
    assert dit_options(config) == dit_options(original)  # the same architecture, key for key
    assert config["model"]["conditioning"] == original["model"]["conditioning"]
    assert load_file(str(exported / "model.safetensors")).keys() == load_file(str(files(name)[0])).keys()
    import_vae(exported / "model.safetensors", exported / "model_config.json", tmp_path / "vae")
    again = import_dit(
        exported / "model.safetensors", exported / "model_config.json", tmp_path / "dit", tmp_path / "vae"
    )
    assert again.hash == report.hash
    assert load_bundle(tmp_path / "vae", kind="vae").hash == load_bundle(folder / "vae", kind="vae").hash


def test_a_dit_their_format_cannot_express_is_not_exported(imported, tmp_path):
    from latentaudio.bundle import save_bundle
    from latentaudio.interop.stable_audio_tools import export_vae

    _, folder, _, _, _ = imported
    bundle = load_bundle(folder / "dit", kind="dit")
    configs = {**bundle.config, "dit": {**bundle.config["dit"], "norm_eps": 1e-6}}
    components = {"dit": bundle.state("dit"), "conditioner": bundle.state("conditioner")}
    save_bundle(
        tmp_path / "dit", "dit", components, configs, {k: v for k, v in bundle.meta.items() if k != "hash"}
    )
    with pytest.raises(FormatError, match="norm_eps"):
        export_vae(folder / "vae", tmp_path / "out", dit=tmp_path / "dit")


def test_their_samplers_match_from_the_same_noise(imported):
    """SAO 1.0 (v): DPM-Solver++(2M) and (3M) SDE on the polyexponential schedule (sigma 500 to
    0.3); Small (rectified flow): Euler and ping-pong on the logSNR schedule; guidance 3, 4 steps.
    The stochastic ones draw their noise from the same seeded generator as the peer's run."""
    from latentaudio.dit.diffusion import make_objective
    from latentaudio.dit.samplers import sample

    name, _, _, denoiser, io = imported
    objective = make_objective("v" if name == "sao_1_0" else "rectified_flow")
    schedule = {"schedule": "polyexponential", "sigma_min": 0.3, "sigma_max": 500.0}
    runs = {"v": ("dpmpp_2m", "dpmpp_3m_sde"), "rectified_flow": ("euler", "pingpong")}[objective.name]
    if objective.name == "rectified_flow":
        schedule = {"schedule": "logsnr"}

    def model_fn(x, t):
        return denoiser.guided(x, t, batch_of(io), cfg_scale=3.0)

    deterministic = sample(model_fn, io["noise"], objective, runs[0], 4, **schedule)
    generator = torch.Generator().manual_seed(0)
    stochastic = sample(model_fn, io["noise"], objective, runs[1], 4, generator=generator, **schedule)
    assert relative_error(deterministic, io["sample_deterministic"]) < 1e-3
    assert relative_error(stochastic, io["sample_stochastic"]) < 1e-3
    assert relative_error(stochastic, deterministic) > 1e-2  # the noise matters: the check can fail


def test_imported_bundles_generate_and_continue_training(tmp_path):
    """make generate with the imported bundles (their default sampler), and make train-diffusion
    init=<the imported DiT> on a user's folder: every weight starts from the import."""
    from apps_helpers import compose_app
    from conftest import write_sine

    from latentaudio.apps.train_diffusion import train
    from latentaudio.pipeline import Pipeline

    checkpoint, config = files("sao_small")
    import_vae(checkpoint, config, tmp_path / "vae")
    import_dit(checkpoint, config, tmp_path / "dit", tmp_path / "vae")
    pipeline = Pipeline.from_bundles(tmp_path / "vae", tmp_path / "dit")
    assert pipeline.defaults["sampler"] == "pingpong" and pipeline.defaults["schedule"] == "logsnr"
    audio = pipeline.generate(seconds=0.5, n=1, steps=2, seed=0)
    assert audio.shape[:2] == (1, 2) and bool(torch.isfinite(audio).all())
    with pytest.raises(ValueError, match="text_path"):
        pipeline.generate(seconds=0.5, n=1, steps=2, prompt="rain")

    for i in range(4):
        write_sine(tmp_path / "audio" / f"{i}.wav", frequency=220.0 * (i + 1), sample_rate=44100, channels=2)
    overrides = [
        f"vae={tmp_path / 'vae'}",
        f"init={tmp_path / 'dit'}",
        f"data.root={tmp_path / 'audio'}",
        "data.crop_frames=8",
        "data.batch_size=2",
        "data.val_fraction=0.25",
        "debug=fast",
        "trainer.max_steps=2",
        "optim.warmup_steps=0",
    ]
    train(compose_app("train_diffusion", tmp_path / "run", overrides))
    continued = load_bundle(tmp_path / "run" / "export", kind="dit")
    imported = load_bundle(tmp_path / "dit", kind="dit")
    assert continued.config["dit"] == imported.config["dit"]
    assert continued.meta["objective"]["name"] == "rectified_flow" and continued.meta["step"] == 2
    # trained from the imported weights: close to them, not equal
    key = "dit.blocks.0.attn.qkv.weight"
    change = (continued.tensors[key] - imported.tensors[key]).abs().max()
    assert 0 < change < 0.1 * imported.tensors[key].abs().max()


def save_tiny_t5(folder: Path, width: int) -> Path:
    """A random T5 encoder of ``width`` channels with a byte-level tokenizer (no vocabulary file)."""
    transformers = pytest.importorskip("transformers")
    config = transformers.T5Config(
        vocab_size=384, d_model=width, d_kv=8, d_ff=32, num_layers=1, num_heads=2, decoder_start_token_id=0
    )
    torch.manual_seed(0)
    transformers.T5EncoderModel(config).save_pretrained(folder)
    transformers.ByT5Tokenizer().save_pretrained(folder)
    return folder


def test_a_prompt_goes_through_the_t5_given_at_generation(tmp_path):
    """Their checkpoints hold no T5: text_path= at generation (or recorded at import) supplies it,
    and the DiT reads its tokens directly, as their conditioner feeds them."""
    from latentaudio.pipeline import Pipeline

    checkpoint, config = files("sao_1_0")
    import_vae(checkpoint, config, tmp_path / "vae")
    import_dit(checkpoint, config, tmp_path / "dit", tmp_path / "vae")
    width = json.loads(config.read_text())["model"]["conditioning"]["cond_dim"]
    t5 = save_tiny_t5(tmp_path / "t5", width)
    pipeline = Pipeline.from_bundles(tmp_path / "vae", tmp_path / "dit", text_path=t5)
    encoder = pipeline.denoiser.conditioner.text_encoder
    with torch.no_grad():
        tokens, mask = encoder(["rain on a roof"])
        cond = pipeline.denoiser.conditioner(
            {"caption": ["rain on a roof"], "seconds_total": torch.tensor([1.0])}
        )
    assert torch.equal(cond["cross_cond"][:, : tokens.shape[1]], tokens)  # no projection: T5's own tokens
    clips = {
        prompt: pipeline.generate(seconds=0.5, steps=3, seed=0, prompt=prompt)
        for prompt in ("rain", "a bell", None)
    }
    assert all(bool(torch.isfinite(clip).all()) for clip in clips.values())
    assert not torch.equal(clips["rain"], clips["a bell"]) and not torch.equal(clips["rain"], clips[None])

    # recorded at import, the folder is used without text_path=
    import_dit(checkpoint, config, tmp_path / "dit_t5", tmp_path / "vae", text_path=t5)
    recorded = Pipeline.from_bundles(tmp_path / "vae", tmp_path / "dit_t5")
    assert torch.equal(recorded.generate(seconds=0.5, steps=3, seed=0, prompt="rain"), clips["rain"])

    # a T5 of another width, and a folder without a T5, are refused naming what the model expects
    narrow = save_tiny_t5(tmp_path / "t5_narrow", width // 2)
    with pytest.raises(ValueError, match="it expects t5-base"):
        Pipeline.from_bundles(tmp_path / "vae", tmp_path / "dit", text_path=narrow)
    with pytest.raises(FileNotFoundError, match="no T5 there"):
        Pipeline.from_bundles(tmp_path / "vae", tmp_path / "dit", text_path=tmp_path / "vae")
