"""Mixed precision: the one autocast helper of every CLIP and EGATH forward pass."""

from __future__ import annotations

import contextlib

import torch


def autocast(device: torch.device, dtype: str = "float16") -> tuple[contextlib.AbstractContextManager, bool]:
    """``(context, needs_grad_scaler)`` for forward passes on ``device``.

    CUDA: autocast in ``dtype`` — ``"float16"`` (extraction and the tiny CLIP: half the memory, twice the speed)
    or ``"auto"`` (training: bf16 where the GPU supports it, else fp16, which then needs a grad scaler).
    CPU and MPS run in float32 (a null context).
    """
    if device.type != "cuda":
        return contextlib.nullcontext(), False
    if dtype == "auto":
        half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif dtype == "float16":
        half = torch.float16
    else:
        raise ValueError(f"autocast dtype must be 'float16' or 'auto', got {dtype!r}")
    return torch.autocast("cuda", dtype=half), half == torch.float16
