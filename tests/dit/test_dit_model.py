import pytest
import torch
from torch.utils.checkpoint import checkpoint

import latentaudio.dit.model
from latentaudio.dit.diffusion import make_objective
from latentaudio.dit.model import DiT

LATENT_DIM = 8


def tiny_dit(**kwargs) -> DiT:
    torch.manual_seed(0)
    return DiT(latent_dim=LATENT_DIM, width=32, depth=2, heads=2, **kwargs)


def inputs(batch: int = 2, frames: int = 12):
    return torch.randn(batch, LATENT_DIM, frames), torch.rand(batch)


def test_untrained_output_is_exactly_zero():
    model = tiny_dit(global_cond_dim=6, cross_attn_dim=10, aligned_cond_channels=3, patch_size=2)
    x, t = inputs(frames=13)
    out = model(
        x,
        t,
        global_cond=torch.randn(2, 6),
        cross_cond=torch.randn(2, 5, 10),
        cross_mask=torch.ones(2, 5, dtype=torch.bool),
        aligned_cond=torch.randn(2, 3, 13),
    )
    assert out.shape == x.shape
    assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize(
    "kwargs, conditions",
    [
        ({}, {}),
        ({"global_cond_dim": 6}, {"global_cond": torch.randn(2, 6)}),
        (
            {"cross_attn_dim": 10},
            {
                "cross_cond": torch.randn(2, 5, 10),
                "cross_mask": torch.tensor([[1, 1, 0, 0, 0], [0] * 5]).bool(),
            },
        ),
        ({"cross_attn_dim": 10}, {"cross_cond": torch.randn(2, 5, 10)}),
        ({"aligned_cond_channels": 3}, {"aligned_cond": torch.randn(2, 3, 11)}),
        ({"patch_size": 2}, {}),
        ({"patch_size": 4, "aligned_cond_channels": 1}, {"aligned_cond": torch.randn(2, 1, 11)}),
    ],
)
def test_forward_shapes_after_a_training_step(kwargs, conditions):
    model = tiny_dit(**kwargs)
    x, t = inputs(frames=11)  # odd: patch sizes 2 and 4 pad and trim
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = (model(x, t, **conditions) - torch.randn_like(x)).pow(2).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    optimizer.step()
    out = model(x, t, **conditions)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert out.abs().sum() > 0


def test_fully_masked_cross_attention_is_finite():
    model = tiny_dit(cross_attn_dim=10)
    for p in model.parameters():  # open the adaLN gates so every path reaches the output
        torch.nn.init.normal_(p, std=0.1)
    x, t = inputs()
    mask = torch.zeros(2, 4, dtype=torch.bool)
    out = model(x, t, cross_cond=torch.randn(2, 4, 10), cross_mask=mask)
    assert torch.isfinite(out).all()
    # a row that keeps no token ignores the tokens entirely
    other = model(x, t, cross_cond=torch.randn(2, 4, 10), cross_mask=mask)
    assert torch.allclose(out, other)


def test_missing_or_unexpected_condition_raises():
    x, t = inputs()
    with pytest.raises(ValueError, match="global_cond"):
        tiny_dit(global_cond_dim=4)(x, t)
    with pytest.raises(ValueError, match="aligned_cond"):
        tiny_dit()(x, t, aligned_cond=torch.randn(2, 3, 12))


def test_bf16_autocast_forward():
    model = tiny_dit(global_cond_dim=6, cross_attn_dim=10, patch_size=2)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x, t = inputs(frames=9)
    cond = dict(
        global_cond=torch.randn(2, 6), cross_cond=torch.randn(2, 3, 10), cross_mask=torch.ones(2, 3).bool()
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, t, **cond)
    reference = model(x, t, **cond)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert torch.isfinite(out).all()
    assert (out - reference).abs().max() < 0.1 * reference.abs().max() + 1e-3


def test_flops_scale_with_length():
    model = tiny_dit(cross_attn_dim=10)
    assert model.flops(128, 8) > 0
    assert model.flops(256, 8) > 2 * model.flops(128, 8) - 1  # attention makes it superlinear


@pytest.mark.parametrize("objective_name", ["v", "rectified_flow"])
def test_tiny_dit_overfits_a_batch(objective_name):
    objective = make_objective(objective_name)
    model = tiny_dit()
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, LATENT_DIM, 16, generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    t = objective.sample_time(4, generator=generator)
    x_t, target = objective.noisy(x0, noise, t), objective.target(x0, noise, t)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss, per_item = objective.loss(model(x_t, t), target, t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert per_item.shape == (4,)
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("checkpoint_blocks, recomputed", [(True, 4), (2, 2)])
def test_block_checkpointing_changes_neither_outputs_nor_gradients(
    monkeypatch, checkpoint_blocks, recomputed
):
    calls = []

    def counted(*args, **kwargs):
        calls.append(kwargs["use_reentrant"])
        return checkpoint(*args, **kwargs)

    monkeypatch.setattr(latentaudio.dit.model, "checkpoint", counted)

    def output_and_grads(every):
        torch.manual_seed(0)
        # dropout on: the recomputation must replay the same random masks
        model = DiT(
            latent_dim=LATENT_DIM,
            width=32,
            depth=4,
            heads=2,
            cross_attn_dim=10,
            dropout=0.1,
            checkpoint_blocks=every,
        )
        for parameter in model.parameters():  # past adaLN-Zero's zeros, so every block matters
            torch.nn.init.normal_(parameter, std=0.1)
        torch.manual_seed(1)
        x, t = inputs(frames=10)
        x.requires_grad_(True)
        out = model(x, t, cross_cond=torch.randn(2, 5, 10))
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        return out.detach(), x.grad, {n: p.grad for n, p in model.named_parameters()}

    out, x_grad, grads = output_and_grads(False)
    assert not calls
    out_ckpt, x_grad_ckpt, grads_ckpt = output_and_grads(checkpoint_blocks)
    assert calls == [False] * recomputed  # non-reentrant, on every k-th block
    torch.testing.assert_close(out_ckpt, out, rtol=0, atol=0)
    torch.testing.assert_close(x_grad_ckpt, x_grad)
    assert grads.keys() == grads_ckpt.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, msg=name)


def test_block_checkpointing_is_for_training_only():
    model = tiny_dit(checkpoint_blocks=True).eval()
    x, t = inputs()
    with torch.no_grad():
        assert torch.equal(model(x, t), tiny_dit().eval()(x, t))
    with pytest.raises(ValueError, match="checkpoint_blocks"):
        tiny_dit(checkpoint_blocks=-1)
