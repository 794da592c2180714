"""Mixed precision for training: bfloat16 autocast where the device computes it natively.

On a CPU with AVX-512-BF16 or AMX (oneDNN's bf16 kernels) a 3-D convolution in bfloat16 runs
several times faster than in float32; on one without, bfloat16 is emulated and slower, so ``auto``
leaves it off there. bfloat16 keeps float32's exponent range, so no loss scaling is needed.
Networks keep the parts that need float32 (their output heads) out of autocast themselves.
"""

from __future__ import annotations

import contextlib
from typing import Optional

import torch

PRECISIONS = ("auto", "bf16", "fp32")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` has bfloat16 arithmetic in hardware (not emulated)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        try:
            return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a torch build without oneDNN's probe
            return False
    return False


def autocast_dtype(precision: str, device) -> Optional[torch.dtype]:
    """The autocast dtype for ``precision`` on ``device``: bfloat16, or None (float32 throughout).

    ``auto`` is bfloat16 where the device has it in hardware; ``bf16`` asks for it anywhere
    (emulated, slowly, on older CPUs); ``fp32`` never."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    device = torch.device(device)
    if precision == "fp32" or (precision == "auto" and not native_bf16(device)):
        return None
    return torch.bfloat16


def autocast(device, dtype: Optional[torch.dtype]):
    """``torch.autocast`` for ``device`` with ``dtype``; a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def full_precision(tensor: torch.Tensor):
    """A context in which autocast is off (for the float32 parts of a network), on ``tensor``'s device."""
    return torch.autocast(tensor.device.type, enabled=False)
