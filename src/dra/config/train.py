"""Training and evaluation settings: the engine's plain dataclasses (the paper's SGD recipe as defaults)
and the range checks `dra.settings` applies to them, each error a one-line `SettingsError` naming the key."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dra.errors import SettingsError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("epoch", "iteration")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # autocast dtype of training and evaluation ("auto": per device)


@dataclass
class TrainSettings:
    """The training section; its defaults are the paper's SGD recipe (the only place they are written)."""

    epochs: int = 5
    batch_size: int = 16
    """Global batch: split evenly over torchrun processes."""
    lr: float = 0.0015
    optimizer: str = "sgd"
    """sgd (Dassl's, the paper's), adam or adamw (betas 0.9, 0.999)."""
    adam_eps: float = 1e-8
    """eps of adam / adamw (TCP: 1e-3, Tip-Adapter-F: 1e-4)."""
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: int = 0
    warmup_lr: float = 1e-5
    iterations: int = 0
    """A budget of optimiser steps instead of `epochs` (0: train by epochs): as many epochs as it takes,
    the last one cut where the budget ends (CLIP-LoRA: 500 x shots)."""
    iterations_per_shot: int = 0
    """`iterations` as this many times the run's shots (CLIP-LoRA's n_iters 500); 0: unused."""
    schedule: str = "epoch"
    """"epoch": the cosine steps once per epoch (Dassl); "iteration": once per optimiser step, over all of them."""
    final_lr: float = 0.0
    """eta_min: the lr the cosine ends at (CLIP-LoRA 1e-6, Dassl 0)."""
    crop_scale_min: float = 0.08
    """The smallest area of the training RandomResizedCrop (Dassl 0.08; Tip-Adapter(-F) 0.5)."""
    drop_last: bool = True
    """Dassl: drop the last partial batch when one full batch exists; False keeps it (CLIP-LoRA, Tip-Adapter-F)."""
    precision: str = "auto"
    num_workers: int = 4
    augment: bool = True
    """False trains on the test transform (deterministic inputs; used to compare 1 vs N processes)."""
    skip_bad_images: bool = False
    log_every: int = 10
    text_chunk: int = 32
    """Training with more than `text_chunk_above` classes: the adapted text blocks run over chunks of this
    many classes, each checkpointed (exact; memory of one chunk, not of every class); 0: never."""
    text_chunk_above: int = 128
    seed: int = 1
    """Set per run from `seeds`; not a key of the settings files."""


LATER_TRAIN_DEFAULTS = {
    "iterations": 0,
    "iterations_per_shot": 0,
    "schedule": "epoch",
    "final_lr": 0.0,
    "drop_last": True,
    "crop_scale_min": 0.08,
}
"""Train settings added after runs existed: at these values they stay out of a run's hash (old runs are reused)."""

PAPER_SGD = {"lr": TrainSettings.lr, "momentum": TrainSettings.momentum, "weight_decay": TrainSettings.weight_decay}


@dataclass
class EvalSettings:
    batch_size: int = 100
    num_workers: int = 4


def _need(ok: bool, key: str, rule: str, value: Any) -> None:
    if not ok:
        raise SettingsError(f"{key} must be {rule}, got {value!r}")


def check_train(t: Any, prefix: str = "", all_shots: bool = False) -> None:
    """Ranges and choices of a train section (a `TrainSettings` or its settings mapping); `prefix` goes
    before `train.` in the message (e.g. "(with dataset_overrides.eurosat) "); `all_shots`: the run
    trains on every image (`shots: all`), so no shot count exists to multiply."""
    _need(t.epochs >= 1, f"{prefix}train.epochs", ">= 1", t.epochs)
    _need(t.batch_size >= 1, f"{prefix}train.batch_size", ">= 1", t.batch_size)
    _need(math.isfinite(t.lr) and t.lr > 0, f"{prefix}train.lr", "a finite number > 0", t.lr)
    _need(0 <= t.momentum < 1, f"{prefix}train.momentum", "in [0, 1)", t.momentum)
    _need(math.isfinite(t.weight_decay) and t.weight_decay >= 0, f"{prefix}train.weight_decay", ">= 0", t.weight_decay)
    _need(
        0 <= t.warmup_epochs < t.epochs,
        f"{prefix}train.warmup_epochs",
        f"in [0, train.epochs={t.epochs})",
        t.warmup_epochs,
    )
    _need(
        math.isfinite(t.warmup_lr) and t.warmup_lr > 0, f"{prefix}train.warmup_lr", "a finite number > 0", t.warmup_lr
    )
    _need(t.iterations >= 0, f"{prefix}train.iterations", ">= 0 (0: train by epochs)", t.iterations)
    _need(t.iterations_per_shot >= 0, f"{prefix}train.iterations_per_shot", ">= 0", t.iterations_per_shot)
    _need(
        not (t.iterations and t.iterations_per_shot),
        f"{prefix}train.iterations",
        "0 when train.iterations_per_shot is set (one budget)",
        t.iterations,
    )
    _need(
        not (t.iterations_per_shot and all_shots),
        f"{prefix}train.iterations_per_shot",
        "0 with shots 'all' (no shot count to multiply)",
        t.iterations_per_shot,
    )
    _need(t.schedule in SCHEDULES, f"{prefix}train.schedule", f"one of {SCHEDULES}", t.schedule)
    _need(
        t.schedule == "epoch" or t.warmup_epochs == 0,
        f"{prefix}train.warmup_epochs",
        "0 with train.schedule 'iteration' (the warm-up counts epochs)",
        t.warmup_epochs,
    )
    _need(
        math.isfinite(t.final_lr) and 0 <= t.final_lr < t.lr, f"{prefix}train.final_lr", "in [0, train.lr)", t.final_lr
    )
    _need(0 < t.crop_scale_min <= 1, f"{prefix}train.crop_scale_min", "in (0, 1]", t.crop_scale_min)
    _need(t.optimizer in OPTIMIZERS, f"{prefix}train.optimizer", f"one of {OPTIMIZERS}", t.optimizer)
    _need(math.isfinite(t.adam_eps) and t.adam_eps > 0, f"{prefix}train.adam_eps", "a finite number > 0", t.adam_eps)
    _need(t.precision in PRECISIONS, f"{prefix}train.precision", f"one of {PRECISIONS}", t.precision)
    _need(t.num_workers >= 0, f"{prefix}train.num_workers", ">= 0", t.num_workers)
    _need(t.text_chunk >= 0, f"{prefix}train.text_chunk", ">= 0 (0: never chunk)", t.text_chunk)
    _need(t.text_chunk_above >= 0, f"{prefix}train.text_chunk_above", ">= 0", t.text_chunk_above)
    _need(t.log_every >= 1, f"{prefix}train.log_every", ">= 1", t.log_every)


def check_eval(e: Any, prefix: str = "") -> None:
    """Ranges of an eval section."""
    _need(e.batch_size >= 1, f"{prefix}eval.batch_size", ">= 1", e.batch_size)
    _need(e.num_workers >= 0, f"{prefix}eval.num_workers", ">= 0", e.num_workers)
