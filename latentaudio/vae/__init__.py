"""Stage one: the waveform VAE, its discriminators, losses and chunked long-audio coding."""

from latentaudio.vae.chunked import decode_chunked, encode_chunked
from latentaudio.vae.discriminator import MultiPeriodDiscriminator, MultiScaleSTFTDiscriminator
from latentaudio.vae.losses import (
    ComplexSTFTLoss,
    MelDistanceLoss,
    SpectralReconstructionLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from latentaudio.vae.model import AudioVAE, VAEOutput, kl_divergence

__all__ = [
    "AudioVAE",
    "MultiPeriodDiscriminator",
    "MultiScaleSTFTDiscriminator",
    "ComplexSTFTLoss",
    "MelDistanceLoss",
    "SpectralReconstructionLoss",
    "VAEOutput",
    "decode_chunked",
    "discriminator_loss",
    "encode_chunked",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "kl_divergence",
]
