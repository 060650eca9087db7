"""Few-step post-training: the distillation target, and make distill end to end on a tiny DiT."""

from __future__ import annotations

import pytest
import torch
from apps_helpers import compose_app

from latentaudio.apps.common import ConfigError
from latentaudio.apps.train_diffusion import train
from latentaudio.bundle import load_bundle
from latentaudio.dit.diffusion import make_objective
from latentaudio.dit.distill import two_step_target
from latentaudio.dit.samplers import sample
from latentaudio.pipeline import Pipeline

STEPPERS = {"v": "ddim", "rectified_flow": "euler"}


@pytest.mark.parametrize("name", ["v", "rectified_flow"])
def test_deterministic_step_and_its_inverses(name):
    objective = make_objective(name)
    torch.manual_seed(0)
    x0, x_t = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    t, u = torch.tensor([0.9, 0.6, 0.3]), torch.tensor([0.5, 0.2, 0.0])
    x_u = objective.step(x_t, x0, t, u)
    assert torch.allclose(objective.x0_between(x_t, x_u, t, u), x0, atol=1e-4)
    assert torch.allclose(objective.denoised(x_t, objective.output_for(x_t, x0, t), t), x0, atol=1e-5)
    assert torch.allclose(x_u[2], x0[2], atol=1e-6)  # a step to t = 0 lands on the prediction


@pytest.mark.parametrize("name", ["v", "rectified_flow"])
@pytest.mark.parametrize("t_start", [1.0, 0.5])
def test_one_student_step_on_the_target_lands_where_the_sampler_takes_two_teacher_steps(name, t_start):
    objective = make_objective(name)
    torch.manual_seed(1)
    weight = torch.randn(4, 4) * 0.3

    def teacher(x, t):  # any network: here a fixed linear map that also depends on t
        return torch.einsum("ij,bjt->bit", weight, x) * (1 + t.view(-1, 1, 1))

    x_t, n = torch.randn(2, 4, 6), 4
    t = torch.full((2,), t_start)
    u = t_start - 1.0 / n
    target_x0 = two_step_target(objective, teacher, x_t, t, n)
    out = objective.output_for(x_t, target_x0, t)
    by_teacher = sample(teacher, x_t, objective, STEPPERS[name], steps=2, t_start=t_start, t_end=u)
    by_student = sample(
        lambda x, time: out, x_t, objective, STEPPERS[name], steps=1, t_start=t_start, t_end=u
    )
    assert torch.allclose(by_student, by_teacher, atol=1e-4)


def test_target_is_finite_when_the_first_teacher_step_reaches_zero():
    objective = make_objective("v")
    x_t = torch.randn(2, 3, 4)
    target = two_step_target(objective, lambda x, t: torch.zeros_like(x), x_t, torch.tensor([0.15, 0.9]), n=2)
    assert torch.isfinite(target).all()


def distill_overrides(vae, dit, root, rounds="[4,2]", per_round=2):
    return [
        f"vae={vae}",
        f"dit={dit}",
        f"data.root={root}",
        "data.batch_size=4",
        "data.val_fraction=0.2",
        "debug=fast",
        f"distill.rounds={rounds}",
        f"distill.steps_per_round={per_round}",
        "callbacks.model_checkpoint.every_n_train_steps=2",
        "optim.warmup_steps=0",
    ]


def test_distill_writes_a_bundle_that_samples_in_few_steps_without_flags(tiny_base, tmp_path):
    vae, dit, root = tiny_base
    base = load_bundle(dit)
    train(compose_app("distill", tmp_path / "d", distill_overrides(vae, dit, root)))
    out = load_bundle(tmp_path / "d" / "export", kind="dit")
    assert out.meta["sampling"] == {"sampler": "ddim", "steps": 2, "cfg_scale": 1.0}
    assert out.meta["distilled_from"] == base.hash and out.meta["labels"] == base.meta["labels"]
    first = load_bundle(tmp_path / "d" / "rounds" / "4steps", kind="dit")
    assert first.meta["sampling"]["steps"] == 4 and first.hash != out.hash != base.hash
    assert load_bundle(dit).hash == base.hash  # the teacher's bundle is untouched
    checkpoint = torch.load(tmp_path / "d" / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(checkpoint["state_dict"]["teacher_round"]) == 1  # a resume knows whose student the teacher is
    pipeline = Pipeline.from_bundles(vae, tmp_path / "d" / "export")
    assert pipeline.defaults["steps"] == 2 and pipeline.defaults["cfg_scale"] == 1.0
    assert pipeline.generate(n=1, seconds=0.2, label="low").abs().max() > 0


def test_distillation_brings_the_student_towards_its_teacher(tiny_base, tmp_path):
    """After one round, the 1-step student lands nearer the guided 2-step teacher than the
    teacher itself does in one step (what it started as)."""
    vae, dit, root = tiny_base
    overrides = distill_overrides(vae, dit, root, rounds="[1]", per_round=40) + ["optim.lr=3e-3"]
    train(compose_app("distill", tmp_path / "d", overrides))
    teacher = Pipeline.from_bundles(vae, dit)
    student = Pipeline.from_bundles(vae, tmp_path / "d" / "export")
    frames = teacher.frames_for(teacher.train_seconds)

    def latents(pipeline, steps, cfg_scale):
        return pipeline.sample_windows(
            frames,
            4,
            teacher.train_seconds,
            None,
            "high",
            seed=3,
            sampler="ddim",
            steps=steps,
            cfg_scale=cfg_scale,
        )

    goal = latents(teacher, 2, teacher.defaults["cfg_scale"])
    before = float((latents(teacher, 1, 1.0) - goal).pow(2).mean())
    after = float((latents(student, 1, 1.0) - goal).pow(2).mean())
    assert after < 0.7 * before, (before, after)


def test_distill_refuses_bad_rounds_and_step_counts_before_training(tiny_base, tmp_path):
    vae, dit, root = tiny_base
    with pytest.raises(ConfigError, match=r"each half the one before"):
        train(compose_app("distill", tmp_path / "a", distill_overrides(vae, dit, root, rounds="[8,3]")))
    with pytest.raises(ConfigError, match=r"trainer.max_steps=7 .* take 4"):
        train(
            compose_app(
                "distill", tmp_path / "b", distill_overrides(vae, dit, root) + ["trainer.max_steps=7"]
            )
        )
    with pytest.raises(ConfigError, match="dit=<path> is required: the DiT bundle to distill"):
        train(compose_app("distill", tmp_path / "c", distill_overrides(vae, "", root)))


def test_the_students_average_starts_from_the_teacher(tiny_base, tmp_path):
    """With an EMA, the exported student is the average of weights that started at the base's,
    not at a random network's."""
    from safetensors.torch import load_file

    vae, dit, root = tiny_base
    overrides = distill_overrides(vae, dit, root, rounds="[1]") + ["ema.decay=0.999", "ema.warmup=false"]
    train(compose_app("distill", tmp_path / "d", overrides))
    base = load_file(load_bundle(dit).path / "model.safetensors")
    student = load_file(load_bundle(tmp_path / "d" / "export", kind="dit").path / "model.safetensors")
    assert base.keys() == student.keys()
    moved = sum(float((student[k].float() - v.float()).pow(2).sum()) for k, v in base.items())
    size = sum(float(v.float().pow(2).sum()) for v in base.values())
    assert moved < 1e-4 * size, (moved, size)  # an average started at random weights is O(size) away


def with_guidance_that_matters(dit, out):
    """A copy of the tiny base (trained 2 steps: its adaLN-Zero gates still shut the labels out)
    with every weight moved a little, so that its guided and unguided outputs differ."""
    from safetensors.torch import load_file

    from latentaudio.bundle import save_bundle

    base = load_bundle(dit)
    generator = torch.Generator().manual_seed(0)
    components: dict[str, dict] = {}
    for name, value in load_file(base.path / "model.safetensors").items():
        component, key = name.split(".", 1)
        if value.is_floating_point():
            value = value + 0.3 * torch.randn(value.shape, generator=generator)
        components.setdefault(component, {})[key] = value
    meta = {k: v for k, v in base.meta.items() if k not in ("kind", "format", "latentaudio_version", "hash")}
    save_bundle(out, "dit", components, base.config, meta)
    return out


@pytest.mark.parametrize("times", ["all", "grid"])
def test_guidance_distillation_samples_unguided_with_the_bases_sampler(tiny_base, tmp_path, times):
    """One round of guidance distillation: the bundle samples with the base's own sampler at
    ``guidance_steps``, unguided, and lands nearer the guided teacher than the unguided base does,
    trained at every time or only at those its sampler visits."""
    vae, dit, root = tiny_base
    dit = with_guidance_that_matters(dit, tmp_path / "base")
    overrides = distill_overrides(vae, dit, root, per_round=40) + [
        "distill.method=guidance",
        "distill.guidance_steps=3",
        f"distill.guidance_times={times}",
        "distill.cfg_scale=4",
        "optim.lr=1e-3",
    ]
    train(compose_app("distill", tmp_path / "d", overrides))
    base = load_bundle(dit)
    out = load_bundle(tmp_path / "d" / "export", kind="dit")
    kept = {k: base.meta["sampling"][k] for k in ("sampler", "decode_detail")}  # the base's, as it decodes
    assert out.meta["sampling"] == {**kept, "steps": 3, "cfg_scale": 1.0}
    assert out.meta["distill_method"] == "guidance" and out.meta["distill_rounds"] == [3]
    assert not (tmp_path / "d" / "rounds").exists()  # one round: nothing to write between rounds
    teacher = Pipeline.from_bundles(vae, dit)
    student = Pipeline.from_bundles(vae, tmp_path / "d" / "export")
    frames = teacher.frames_for(teacher.train_seconds)

    def latents(pipeline, cfg_scale):
        return pipeline.sample_windows(
            frames, 4, teacher.train_seconds, None, "high", seed=3, steps=3, cfg_scale=cfg_scale
        )

    goal = latents(teacher, 4.0)
    before = float((latents(teacher, 1.0) - goal).pow(2).mean())
    after = float((latents(student, 1.0) - goal).pow(2).mean())
    assert after < 0.7 * before, (before, after)


def test_distill_refuses_an_unknown_method_and_missing_guidance_steps(tiny_base, tmp_path):
    vae, dit, root = tiny_base
    with pytest.raises(ConfigError, match=r"distill.method='fast': choose progressive .* or guidance"):
        train(
            compose_app(
                "distill", tmp_path / "a", distill_overrides(vae, dit, root) + ["distill.method=fast"]
            )
        )
    with pytest.raises(ConfigError, match=r"distill.guidance_times='some': choose all .* or grid"):
        overrides = distill_overrides(vae, dit, root) + [
            "distill.method=guidance",
            "distill.guidance_times=some",
        ]
        train(compose_app("distill", tmp_path / "c", overrides))
    with pytest.raises(ConfigError, match=r"distill.guidance_steps=0"):
        overrides = distill_overrides(vae, dit, root) + [
            "distill.method=guidance",
            "distill.guidance_steps=0",
        ]
        train(compose_app("distill", tmp_path / "b", overrides))
