"""The training loop: Dassl's semantics (per-epoch cosine, last epoch kept), resumable, DDP-ready.

Every epoch ends with two atomic writes in the run folder:
- `adapters.safetensors` + `adapters.json`: the adapter-only checkpoint (dra.load_model reads it);
- `last.pt`: adapters + optimiser + scheduler + scaler + history, to resume a killed run.
Each epoch reseeds the RNGs from (seed, epoch, rank), so a resumed run continues exactly as an
uninterrupted one would have.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from dra.data import ImageDataset
from dra.engine import distributed
from dra.engine.checkpoint import CheckpointError, assign_adapters, save_adapters
from dra.io import atomic_write
from dra.engine.precision import autocast, grad_scaler, resolve
from dra.settings import TrainSettings  # noqa: F401 - the engine takes its plain settings from the config layer

log = logging.getLogger("dra.train")


class RunMismatchError(RuntimeError):
    """A run folder holds a run with other settings."""


def build_optimizer(params, s: TrainSettings):
    """SGD + cosine annealing stepped once per epoch (Dassl), after an optional constant warm-up."""
    opt = torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(s.epochs - s.warmup_epochs, 1))
    if s.warmup_epochs <= 0:
        return opt, cosine
    warm = torch.optim.lr_scheduler.ConstantLR(opt, factor=s.warmup_lr / s.lr, total_iters=s.warmup_epochs)
    return opt, torch.optim.lr_scheduler.SequentialLR(opt, [warm, cosine], milestones=[s.warmup_epochs])


def _file_logger(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # the terminal shows the progress bar; the file keeps the log
    return handler


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    torch.manual_seed(seed * 1_000_003 + epoch * 1_009 + rank)


def fit(model, items, transforms: tuple, settings: TrainSettings, run_dir: str | os.PathLike,
        device: torch.device | str = "cpu", identity: dict | None = None) -> list[dict]:
    """Train `model`'s adapters on `items`; returns the per-epoch history. Resumes from `run_dir`."""
    device = torch.device(device)
    info = distributed.current()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    identity = {"settings": asdict(settings), **(identity or {})}
    identity["settings"].pop("num_workers")
    identity["settings"].pop("log_every")
    precision = resolve(settings.precision, device)
    if settings.batch_size % info.world_size:
        raise ValueError(f"batch size {settings.batch_size} does not split over {info.world_size} processes")
    local_batch = settings.batch_size // info.world_size

    model.to(device)
    params = model.trainable_parameters()
    if not params:
        raise ValueError(f"method {model.method} has nothing to train")
    opt, sched = build_optimizer(params, settings)
    scaler = grad_scaler(precision, device)
    history: list[dict] = []
    start_epoch = 0

    state_path = run_dir / "last.pt"
    if state_path.is_file():
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"resume state {state_path} is unreadable ({e}); delete it to start over") from e
        if state["identity"] != identity:
            raise RunMismatchError(
                f"{run_dir} holds a run with other settings; use another --output or delete that folder "
                f"(saved: {state['identity']}; now: {identity})"
            )
        assign_adapters(model, state["adapters"], source=str(state_path))
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        history, start_epoch = state["history"], state["epoch"]

    handler = _file_logger(run_dir) if info.is_main else None
    if start_epoch:
        log.info("resuming %s from epoch %d/%d", run_dir, start_epoch, settings.epochs)
    if start_epoch >= settings.epochs:
        if handler:
            log.removeHandler(handler)
            handler.close()
        return history

    train_tf, test_tf = transforms
    dataset = ImageDataset(items, train_tf if settings.augment else test_tf, skip_bad=settings.skip_bad_images)
    sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=settings.seed)
    drop_last = len(dataset) >= settings.batch_size  # Dassl: drop the last partial batch if one full exists
    net = model
    if info.enabled:
        find_unused = not getattr(getattr(model, "config", None), "learnable_scores", True)
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      find_unused_parameters=find_unused)
    steps_per_epoch = len(dataset) // settings.batch_size if drop_last else math.ceil(len(dataset) / settings.batch_size)
    total_steps = steps_per_epoch * (settings.epochs - start_epoch)
    done_steps, started = 0, time.monotonic()

    model.train()
    for epoch in range(start_epoch, settings.epochs):
        _seed_epoch(settings.seed, epoch, info.rank)
        sampler.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=local_batch, sampler=sampler, drop_last=drop_last,
                            num_workers=settings.num_workers, pin_memory=device.type == "cuda",
                            persistent_workers=False)
        lr = opt.param_groups[0]["lr"]
        sums: dict[str, torch.Tensor] = {}
        seen, epoch_start = 0, time.monotonic()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{settings.epochs}", leave=False, disable=not info.is_main,
                   unit="batch")
        for step, (images, labels) in enumerate(bar):
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with autocast(precision, device):
                logits = net(images)
            loss, parts = model.loss(logits, labels)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            parts["loss"] = loss.detach()
            for k, v in parts.items():  # device-side sums: no sync per step
                sums[k] = sums.get(k, 0) + v * len(labels)
            seen += len(labels)
            done_steps += 1
            if step % settings.log_every == 0 or step == steps_per_epoch - 1:
                current = float(parts["loss"])
                rate = seen * info.world_size / max(time.monotonic() - epoch_start, 1e-9)
                eta = (time.monotonic() - started) / done_steps * (total_steps - done_steps)
                bar.set_postfix(loss=f"{current:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}", eta=f"{eta:.0f}s")
                if info.is_main:
                    log.info("epoch %d/%d step %d/%d loss %.4f lr %.3e %.1f img/s eta %.0fs", epoch + 1,
                             settings.epochs, step + 1, steps_per_epoch, current, lr, rate, eta)
        sched.step()
        record = {"epoch": epoch + 1, "lr": lr, "images": seen * info.world_size,
                  "seconds": time.monotonic() - epoch_start,
                  **{k: float(v) / max(seen, 1) for k, v in sums.items()}}
        history.append(record)
        if info.is_main:
            _end_of_epoch(model, run_dir, epoch + 1, identity, opt, sched, scaler, history)
            log.info("epoch %d done: %s", epoch + 1, {k: round(v, 5) for k, v in record.items()})
        distributed.barrier()
    if handler:
        log.removeHandler(handler)
        handler.close()
    return history


def _end_of_epoch(model, run_dir: Path, epoch: int, identity: dict, opt, sched, scaler, history) -> None:
    """Atomic writes: the adapter checkpoint, then the resume state."""
    save_adapters(model, run_dir / "adapters", extra={"epoch": epoch})
    state = {"epoch": epoch, "identity": identity, "history": history,
             "adapters": {k: v.detach().cpu().clone() for k, v in model.adapter_state_dict().items()},
             "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "scaler": scaler.state_dict()}
    atomic_write(run_dir / "last.pt", lambda tmp: torch.save(state, tmp))
