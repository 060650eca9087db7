"""What the machine does fast: one place that knows whether a device has native bf16 kernels."""

from __future__ import annotations

import torch

# inference precisions (decode_precision, sample_precision): auto = bf16 where it pays
PRECISIONS = ("fp32", "bf16", "auto")


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """True on a GPU with bf16 and on CPUs whose oneDNN has native bf16 kernels (AVX-512 BF16, AMX).

    On an AVX2-only CPU bf16 autocast is emulated: convolutions run about 100x and matmuls about
    7x slower than in fp32, so bf16 must never be switched on there for speed.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(supported is not None and supported())
    return False


def bf16_for(precision: str, device: str | torch.device, name: str, auto_on_cpu: bool = True) -> bool:
    """Whether an inference ``precision`` ("fp32", "bf16" or "auto") runs in bf16 on ``device``;
    refuses another value, naming the setting ``name``. "auto": bf16 where the device has native
    bf16 kernels, on a CPU only with ``auto_on_cpu``."""
    if precision not in PRECISIONS:
        raise ValueError(f"{name}={precision!r}: choose one of {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if precision != "auto":
        return precision == "bf16"
    return (auto_on_cpu or device.type != "cpu") and native_bf16(device)
