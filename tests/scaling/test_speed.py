"""Gradient accumulation's bookkeeping, the frozen discriminator of the generator phase, the fused optimizer."""

import pytest
import torch

from latentaudio.training.speed import GradientAccumulation, adamw, compile_in_place, frozen


def test_a_group_closes_every_n_batches_with_the_mean_of_its_losses():
    accumulation = GradientAccumulation(3)
    assert accumulation.scale(torch.tensor(6.0)).item() == 2.0  # the group's gradient is a mean
    means = []
    for value in [1.0, 2.0, 6.0, float("nan"), 1.0, 1.0]:
        last = accumulation.begin()
        accumulation.add("loss", torch.tensor(value))
        if last:
            means.append(accumulation.mean("loss"))
            accumulation.close()
        assert accumulation.in_progress == (not last)
    assert means[0].item() == 3.0
    assert not torch.isfinite(means[1])  # one non-finite batch fails its whole group in the guard


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_accumulation_needs_a_whole_number_of_batches(bad):
    with pytest.raises(ValueError, match="1 or more"):
        GradientAccumulation(bad)


def test_a_frozen_network_passes_gradients_to_its_input_only():
    network = torch.nn.Linear(3, 1)
    network.bias.requires_grad_(False)
    x = torch.randn(2, 3, requires_grad=True)
    with frozen(network):
        y = network(x)
    y.sum().backward()
    assert x.grad is not None and network.weight.grad is None
    assert network.weight.requires_grad and not network.bias.requires_grad  # flags restored


def test_adamw_fuses_plain_parameters_and_steps_as_the_unfused_one():
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 1))
    network = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 1))
    network.load_state_dict(reference.state_dict())
    initial = network[0].weight.detach().clone()
    groups = [
        {"params": [network[0].weight, network[1].weight], "weight_decay": 0.1},
        {"params": [network[0].bias, network[1].bias], "weight_decay": 0.0},
    ]
    fused = adamw(groups, lr=1e-2, betas=(0.8, 0.99))
    assert all(group["fused"] for group in fused.param_groups)
    plain = torch.optim.AdamW(
        [
            {"params": [reference[0].weight, reference[1].weight], "weight_decay": 0.1},
            {"params": [reference[0].bias, reference[1].bias], "weight_decay": 0.0},
        ],
        lr=1e-2,
        betas=(0.8, 0.99),
        foreach=False,
    )
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    for _ in range(20):
        for model, optimizer in ((network, fused), (reference, plain)):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
    for mine, theirs in zip(network.parameters(), reference.parameters()):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
    assert (network[0].weight - initial).abs().max() > 1e-2  # it did train


def test_adamw_keeps_the_default_path_for_parameters_fused_kernels_do_not_take():
    integer = torch.nn.Parameter(torch.zeros(3, dtype=torch.int64), requires_grad=False)
    optimizer = adamw([torch.nn.Parameter(torch.zeros(3)), integer], lr=1e-3)
    assert not optimizer.param_groups[0]["fused"]


def test_an_unknown_compile_mode_is_refused():
    with pytest.raises(ValueError, match="max-autotune"):
        compile_in_place([torch.nn.Linear(1, 1)], "fastest")


def test_the_benchmarks_time_the_modules_own_training_steps():
    from experiments.common import model_size
    from experiments.throughput.steps import dit_training, vae_training
    from latentaudio.dit.training import DiTTraining
    from latentaudio.vae.training import VAETraining

    cpu = torch.device("cpu")
    vae, vae_step = vae_training(model_size("vae", "tiny"), cpu, adversarial=True)
    dit, dit_step = dit_training(model_size("dit", "tiny"), 4, cpu, num_labels=0)
    assert isinstance(vae, VAETraining) and isinstance(dit, DiTTraining)
    assert vae.hparams.optim["lr"] == 1.0e-3  # conf/experiment/demo_vae.yaml, not a copy
    before = [p.detach().clone() for p in dit.denoiser.parameters()]
    assert torch.isfinite(vae_step(0.3 * torch.randn(2, 1, 2048)))
    timing = {"seconds_start": torch.zeros(2), "seconds_total": torch.full((2,), 1.0)}
    assert torch.isfinite(dit_step(torch.randn(2, 4, 8), timing))
    assert vae.trainer.global_step == dit.trainer.global_step == 1  # one generator / one DiT step each
    assert any(not torch.equal(a, b) for a, b in zip(before, dit.denoiser.parameters()))


def test_the_demo_recipes_train_in_the_precision_this_machine_runs_fastest(tmp_path):
    import torch
    from apps_helpers import compose_app

    from latentaudio.training.speed import fastest_precision

    expected = "bf16-mixed" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "32-true"
    assert torch.cuda.is_available() or fastest_precision() == expected
    for app, experiment in (("train_vae", "demo_vae"), ("train_diffusion", "demo_dit")):
        cfg = compose_app(app, tmp_path, [f"experiment={experiment}", "vae=unused"])
        assert cfg.trainer.precision == fastest_precision()
