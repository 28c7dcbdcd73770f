"""Mixed precision where the device supports it: bf16 (or fp16 + GradScaler) on CUDA, fp32 on CPU."""

from __future__ import annotations

import contextlib

import torch

from dra.config import PRECISIONS
from dra.errors import SettingsError


def resolve(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise SettingsError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
