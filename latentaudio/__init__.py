"""latentaudio: latent audio diffusion, from your own audio folder to generated audio."""

__version__ = "0.1.0"
