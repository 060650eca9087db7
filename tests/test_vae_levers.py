"""The VAE lever study's rows keep their meaning when the demo recipe changes: a lever trained
before the demo decoded noisy latents (``loss.latent_noise``, 2026-12-06) is restated without it."""

from experiments.common import compose
from experiments.vae_fidelity import levers


def test_levers_that_do_not_name_the_latent_noise_train_without_it():
    assert compose("train_vae", ["experiment=demo_vae"], ("loss",))["loss"]["latent_noise"] > 0
    before = levers.overrides_of("recipe_bands4_2400_strides248")  # make demo's VAE until then
    assert (
        before[0] == "loss.latent_noise=0.0" and before[1:] == levers.LEVERS["recipe_bands4_2400_strides248"]
    )
    composed = compose("train_vae", ["experiment=demo_vae", *before], ("loss",))
    assert composed["loss"]["latent_noise"] == 0.0


def test_a_lever_that_names_the_latent_noise_keeps_its_own():
    named = levers.overrides_of("recipe_bands4_2400_strides248_latentnoise10")
    assert [o for o in named if o.startswith("loss.latent_noise=")] == ["loss.latent_noise=1.0"]
