"""Compute precision. A CPU runs fp32 (its bf16 matmuls are slow). A GPU runs bf16 autocast over fp32 trainable
weights: the optimizer's state and updates stay fp32 (bf16 weights would round away updates of lr 1e-6), and
weights that never train (LoRA's base, the KL reference) are stored in bf16."""

from __future__ import annotations

import contextlib

import torch


def compute_dtype(setting: str, device: torch.device) -> torch.dtype:
    """`model.dtype` of a config on `device`: auto is bfloat16 on a GPU, float32 elsewhere."""
    if setting == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, setting)


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Forward passes in `dtype` (a no-op for float32)."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
