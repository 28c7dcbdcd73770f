"""The optimiser and learning-rate schedule of a run, from its `TrainSettings` (`s` below).

Dassl's semantics by default: SGD, cosine annealing stepped once per epoch after an optional constant
warm-up; `train.schedule: iteration` steps it once per optimiser step instead (CLIP-LoRA).
"""

from __future__ import annotations

import math

import torch

from dra.errors import SettingsError


def make_optimizer(params, s) -> torch.optim.Optimizer:
    """`train.optimizer`: sgd (Dassl: momentum, dampening 0, no Nesterov), adam or adamw (betas 0.9, 0.999,
    eps `train.adam_eps`); weight decay `train.weight_decay` for all three."""
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    if s.optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if s.optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=s.lr, betas=(0.9, 0.999), eps=s.adam_eps, weight_decay=s.weight_decay)
    raise SettingsError(f"train.optimizer must be one of sgd, adam, adamw, got {s.optimizer!r}")


def plan(s, steps_per_epoch: int) -> tuple[int, int]:
    """(epochs, optimiser steps in all): `epochs` full epochs, or an `iterations` budget spread over as many
    epochs as it takes (the last one cut short)."""
    if s.iterations <= 0:
        return s.epochs, s.epochs * steps_per_epoch
    return math.ceil(s.iterations / max(steps_per_epoch, 1)), s.iterations


def build_optimizer(params, s, total_steps: int | None = None):
    """The optimiser + cosine annealing to `final_lr`: stepped once per epoch (Dassl; T_max = the epochs), after
    an optional constant warm-up, or (`schedule: iteration`) once per step over `total_steps`."""
    opt = make_optimizer(params, s)
    if s.schedule == "iteration":
        steps = total_steps if total_steps is not None else s.iterations
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(int(steps), 1), eta_min=s.final_lr)
    # Dassl: T_max = the epoch count even after a warm-up (the cosine restarts after it and never reaches 0)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s.epochs, eta_min=s.final_lr)
    if s.warmup_epochs <= 0:
        return opt, cosine
    warm = torch.optim.lr_scheduler.ConstantLR(opt, factor=s.warmup_lr / s.lr, total_iters=s.warmup_epochs)
    return opt, torch.optim.lr_scheduler.SequentialLR(opt, [warm, cosine], milestones=[s.warmup_epochs])
