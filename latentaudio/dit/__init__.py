"""Stage two: the diffusion transformer, its conditioning, objectives and samplers (pure torch)."""

from latentaudio.dit.conditioning import Conditioner, LabelConditioner, TimingConditioner
from latentaudio.dit.diffusion import DiffusionObjective, RectifiedFlow, VObjective, make_objective
from latentaudio.dit.model import DiT
from latentaudio.dit.samplers import VALID_SAMPLERS, classifier_free_guidance, sample
from latentaudio.dit.text_encoders import ByteTextEncoder, T5TextEncoder

__all__ = [
    "VALID_SAMPLERS",
    "ByteTextEncoder",
    "Conditioner",
    "DiT",
    "DiffusionObjective",
    "LabelConditioner",
    "RectifiedFlow",
    "T5TextEncoder",
    "TimingConditioner",
    "VObjective",
    "classifier_free_guidance",
    "make_objective",
    "sample",
]
