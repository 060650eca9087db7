"""The peer's side of quality.py: stable-audio-tools' Oobleck VAE trained with its Stable Audio Open recipe.

The recipe is stable-audio-tools' ``stable_audio_2_0_vae.json`` (the Stable Audio Open 1.0
autoencoder's) as ``AutoencoderTrainingWrapper.training_step`` (0.0.19) runs it, at our demo
network's size, fp32 (what the recipe runs on a CPU). Kept: auraloss MR-STFT over 2048..32 with
perceptual weighting, L1 weight 0, KL 1e-4, AdamW lr 1.5e-4 betas (0.8, 0.99) weight decay 1e-3,
no gradient clipping (the factory passes none). With its critic, also the wrapper's schedule:
``warmup_steps`` is 0, so adversarial and feature-matching terms count from the first step, the
critic's loss is computed on every batch and odd batches train the critic instead of the
autoencoder (``global_step % 2``); the critic is EnCodec's STFT discriminator sized like ours
(conf ``discriminator.filters`` and ``n_ffts``, hops a quarter) where the recipe's has 64 filters
for a 128-channel network. Left out, each in the peer's favour at a budget of minutes: the
InverseLR schedule, whose ``warmup: 0.999`` holds the LR under 40% of its peak for the first 500
steps, and the EMA weights it exports (beta up to 0.9999), which lag a short run's weights.
"""

from __future__ import annotations

from experiments.benchmarks import peer

KL_WEIGHT = 1e-4
LR, DISC_LR, BETAS, WEIGHT_DECAY = 1.5e-4, 3e-4, (0.8, 0.99), 1e-3
ADVERSARIAL_WEIGHT, FEATURE_MATCHING_WEIGHT = 0.1, 5.0


def sao_training(size: dict, critic: dict | None):
    """The peer's autoencoder at ``size``, its step ``step(reals (B, 1, T)) -> MR-STFT loss`` and a line
    saying what it trains with. ``critic``: our recipe's ``discriminator`` section to size the peer's
    critic by, or None to train without one."""
    import torch
    from stable_audio_tools.models.discriminators import EncodecDiscriminator

    autoencoder = peer.peer_autoencoder(size)
    spectral = peer.sao_spectral_loss()
    opt_gen = torch.optim.AdamW(autoencoder.parameters(), lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY)
    text = (
        f"Oobleck {size['base_channels']} channels, fp32; AdamW lr {LR:g} betas {BETAS} wd {WEIGHT_DECAY:g}, "
        f"constant LR, no clipping; auraloss MR-STFT 2048..32 perceptual + KL x{KL_WEIGHT:g}; "
    )
    disc = None
    if critic is None:
        text += "no critic"
    else:
        n_ffts = list(critic["n_ffts"])
        disc = EncodecDiscriminator(
            in_channels=1,
            filters=critic["filters"],
            n_ffts=n_ffts,
            hop_lengths=[n // 4 for n in n_ffts],
            win_lengths=n_ffts,
        )
        opt_disc = torch.optim.AdamW(disc.parameters(), lr=DISC_LR, betas=BETAS, weight_decay=WEIGHT_DECAY)
        text += (
            f"encodec critic ({critic['filters']} filters, n_ffts {n_ffts}, hinge, adv x{ADVERSARIAL_WEIGHT:g}, "
            f"FM x{FEATURE_MATCHING_WEIGHT:g}, lr {DISC_LR:g}) from step 0, on every other batch"
        )
    steps_done = 0

    def step(reals):
        nonlocal steps_done
        latents, info = autoencoder.encode(reals, return_info=True)
        decoded = autoencoder.decode(latents)
        spectral_loss = spectral(reals, decoded)  # their argument order (reals, decoded)
        if disc is not None and steps_done % 2:
            loss_dis, _, _ = disc.loss(reals=reals, fakes=decoded)
            opt_disc.zero_grad(set_to_none=True)
            loss_dis.backward()
            opt_disc.step()
        else:
            loss = spectral_loss + KL_WEIGHT * info["kl"]
            if disc is not None:
                # one critic pass per batch, as in the wrapper: its adversarial terms here, its own loss above
                _, loss_adv, feature_matching = disc.loss(reals=reals, fakes=decoded)
                loss = loss + ADVERSARIAL_WEIGHT * loss_adv + FEATURE_MATCHING_WEIGHT * feature_matching
            opt_gen.zero_grad(set_to_none=True)
            loss.backward()
            opt_gen.step()
        steps_done += 1
        return spectral_loss.detach()

    return autoencoder, step, text
