"""The VAE lever study's rows keep their meaning when the demo recipe changes: a lever trained
before the demo changed a setting (``loss.latent_noise``, the spectral channels: 2026-12-06) is
restated with the value it had then."""

from experiments.common import compose
from experiments.vae_fidelity import levers

SECTIONS = ("loss", "vae")


def test_levers_that_do_not_name_a_changed_setting_train_with_its_old_value():
    now = compose("train_vae", ["experiment=demo_vae"], SECTIONS)
    assert now["loss"]["latent_noise"] > 0 and now["vae"]["spectral_channels"] > 0
    before = levers.overrides_of("recipe_bands4_2400_strides248")  # make demo's VAE until then
    assert before[len(levers.RESTATED) :] == levers.LEVERS["recipe_bands4_2400_strides248"]
    composed = compose("train_vae", ["experiment=demo_vae", *before], SECTIONS)
    assert composed["loss"]["latent_noise"] == 0.0 and composed["loss"]["detail_dropout"] == 0.0
    assert composed["vae"]["spectral_channels"] == 0 and composed["vae"]["noise_bands"] == 0
    assert composed["vae"]["latent_dim"] == 32


def test_a_lever_that_names_a_changed_setting_keeps_its_own():
    named = levers.overrides_of("recipe_bands4_2400_strides248_latentnoise10")
    assert [o for o in named if o.startswith("loss.latent_noise=")] == ["loss.latent_noise=1.0"]
    spectral = levers.overrides_of("recipe_bands4_2400_strides248_latentnoise05_mel32_drop50_noise64")
    assert [o for o in spectral if o.startswith("vae.noise_bands=")] == ["vae.noise_bands=64"]
    composed = compose("train_vae", ["experiment=demo_vae", *spectral], SECTIONS)
    assert composed["vae"]["latent_dim"] == 64 and composed["loss"]["detail_dropout"] == 0.5
