"""What the machine does fast: one place that knows whether a device has native bf16 kernels."""

from __future__ import annotations

import torch

# inference precisions (decode_precision, sample_precision): auto = bf16 where it pays, see their owners
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
