"""The training loop: Dassl's semantics (per-epoch cosine, last epoch kept), resumable, DDP-ready.

Every epoch ends with two atomic writes in the run folder:
- `adapters.safetensors` + `adapters.json`: the adapter-only checkpoint (dra.load_model reads it);
- `last.safetensors`: adapters + optimiser tensors, with the optimiser/scheduler/scaler state and the
  history as JSON in its metadata, to resume a killed run. Nothing is unpickled: a `last.pt` of
  older versions (a pickle) is refused, never loaded.
Each epoch reseeds the RNGs from (seed, epoch, rank), so a resumed run continues exactly as an
uninterrupted one would have. A non-finite loss stops training (`TrainingDivergedError`) before
anything of that epoch is saved. The main process holds a lock on the run folder while it trains.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from filelock import FileLock, Timeout
from safetensors import safe_open
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from dra import run_files
from dra.data import DataError, ImageDataset
from dra.engine import distributed
from dra.engine.checkpoint import CheckpointError, assign_adapters, save_adapters
from dra.engine.metrics_log import METRICS_FILE, TB_DIR, MetricsLog
from dra.engine.precision import autocast, grad_scaler, resolve
from dra.errors import one_line as _one_line
from dra.io import OutputError, atomic_write, remove_orphans
from dra.run_files import LEGACY_RESUME_FILE, LOCK_FILE, RESUME_FILE
from dra.settings import LATER_TRAIN_DEFAULTS, TrainSettings

if TYPE_CHECKING:  # the engine takes any method; no import cycle at runtime
    from dra.methods.base import ClassifierModel

log = logging.getLogger("dra.train")

_RESUME_KEYS = ("epoch", "identity", "history", "optimizer", "scheduler", "scaler")


class RunMismatchError(RuntimeError):
    """A run folder holds a run with other settings."""


class RunBusyError(RuntimeError):
    """Another process is training in this run folder."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; nothing of the epoch was saved."""


def make_optimizer(params, s: TrainSettings) -> torch.optim.Optimizer:
    """`train.optimizer`: sgd (Dassl: momentum, dampening 0, no Nesterov), adam or adamw (betas 0.9, 0.999,
    eps `train.adam_eps`); weight decay `train.weight_decay` for all three."""
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    if s.optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if s.optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=s.lr, betas=(0.9, 0.999), eps=s.adam_eps, weight_decay=s.weight_decay)
    raise ValueError(f"train.optimizer must be one of sgd, adam, adamw, got {s.optimizer!r}")


def plan(s: TrainSettings, steps_per_epoch: int) -> tuple[int, int]:
    """(epochs, optimiser steps in all): `epochs` full epochs, or an `iterations` budget spread over as many
    epochs as it takes (the last one cut short)."""
    if s.iterations <= 0:
        return s.epochs, s.epochs * steps_per_epoch
    return math.ceil(s.iterations / max(steps_per_epoch, 1)), s.iterations


def build_optimizer(params, s: TrainSettings, total_steps: int | None = None):
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


class _QuietFileHandler(logging.FileHandler):
    """train.log: a line that cannot be written (a full disk) is dropped, not a traceback on stderr; the
    next checkpoint write fails with an error that names its file."""

    def handleError(self, record) -> None:  # noqa: N802 - logging's name
        pass


def _file_logger(run_dir: Path) -> logging.Handler:
    handler = _QuietFileHandler(run_dir / run_files.TRAIN_LOG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # the terminal shows the progress bar; the file keeps the log
    return handler


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    torch.manual_seed(seed * 1_000_003 + epoch * 1_009 + rank)


def _plain(value):
    """JSON round trip (tuples -> lists), so saved and current identities compare equal."""
    return json.loads(json.dumps(value))


def save_resume_state(
    path: Path, model: ClassifierModel, epoch: int, identity: dict, opt, sched, scaler, history
) -> None:
    """Tensors in a safetensors file, everything else as JSON in its metadata (no pickle anywhere)."""
    tensors = {
        f"adapters/{k}": v.detach().to("cpu").contiguous().clone() for k, v in model.adapter_state_dict().items()
    }
    osd = opt.state_dict()
    opt_state = {}
    for idx, entry in osd["state"].items():
        plain = {}
        for k, v in entry.items():
            if torch.is_tensor(v):
                tensors[f"optimizer/{idx}/{k}"] = v.detach().to("cpu").contiguous().clone()
            else:
                plain[k] = v
        opt_state[str(idx)] = plain
    meta = {
        "format": "dra-resume",
        "format_version": 1,
        "epoch": epoch,
        "identity": identity,
        "history": history,
        "optimizer": {"state": opt_state, "param_groups": osd["param_groups"]},
        "scheduler": sched.state_dict(),
        "scaler": scaler.state_dict(),
    }
    text = json.dumps(meta, allow_nan=False)  # a non-finite value is never saved
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"dra_resume": text}))


def read_resume_state(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata, tensors) of a resume state; any problem is a one-line CheckpointError."""
    fix = "delete it to start the run over"
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            text = (f.metadata() or {}).get("dra_resume")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(f"resume state {path} is unreadable or corrupt ({_one_line(e)}); {fix}") from None
    if text is None:
        raise CheckpointError(f"resume state {path} is not a dra resume state (no 'dra_resume' metadata); {fix}")
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"resume state {path} holds corrupt metadata ({e}); {fix}") from None
    missing = [k for k in _RESUME_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise CheckpointError(f"resume state {path} lacks {', '.join(missing)}; {fix}")
    return meta, tensors


def _restore(state_path: Path, meta: dict, tensors: dict, model: ClassifierModel, opt, sched, scaler) -> None:
    adapters = {k[len("adapters/") :]: v for k, v in tensors.items() if k.startswith("adapters/")}
    assign_adapters(model, adapters, source=str(state_path))
    try:
        opt_state = {}
        for idx, plain in meta["optimizer"]["state"].items():
            entry = dict(plain)
            prefix = f"optimizer/{idx}/"
            entry.update({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
            opt_state[int(idx)] = entry
        opt.load_state_dict({"state": opt_state, "param_groups": meta["optimizer"]["param_groups"]})
        sched.load_state_dict(meta["scheduler"])
        scaler.load_state_dict(meta["scaler"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        raise CheckpointError(
            f"resume state {state_path} does not fit this run's optimiser ({_one_line(e)}); "
            "delete it to start the run over"
        ) from None


class _NonFinite:
    """Remembers, on the device, the first step of an epoch whose loss was not finite (no host sync)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.step = torch.full((), -1, dtype=torch.long, device=device)
        self.parts: torch.Tensor | None = None
        self.names: list[str] = []

    def update(self, step: int, parts: dict[str, torch.Tensor]) -> None:
        if not self.names:
            self.names = list(parts)
        values = torch.stack([parts[k].detach().float().reshape(()) for k in self.names])
        first = ~torch.isfinite(values[self.names.index("loss")]) & (self.step < 0)
        self.step = torch.where(first, torch.full_like(self.step, step), self.step)
        self.parts = values if self.parts is None else torch.where(first, values, self.parts)

    def check(self, epoch: int, epochs: int, steps: int, last_good: int, lr: float) -> None:
        bad = int(self.step)  # the one host read, at log points and at the epoch's end
        if bad < 0:
            return
        parts = ", ".join(f"{k} {v:.4g}" for k, v in zip(self.names, self.parts.tolist()))
        raise TrainingDivergedError(
            f"training diverged: non-finite loss at epoch {epoch}/{epochs} step {bad + 1}/{steps} ({parts}); "
            f"{_kept(last_good)}; lower train.lr (now {lr:g}) or check the data"
        )

    def check_weights(
        self,
        model: ClassifierModel,
        epoch: int,
        epochs: int,
        steps: int,
        last_good: int,
        lr: float,
        last: dict[str, torch.Tensor],
    ) -> None:
        """Before a checkpoint is written: the last step's update may have made the weights non-finite."""
        bad = [k for k, v in model.adapter_state_dict().items() if not bool(torch.isfinite(v).all())]
        if bad:
            parts = ", ".join(f"{k} {float(v):.4g}" for k, v in last.items())
            raise TrainingDivergedError(
                f"training diverged: {len(bad)} adapter tensors became non-finite at epoch {epoch}/{epochs} "
                f"step {steps}/{steps} (last loss parts: {parts}); {_kept(last_good)}; lower train.lr "
                f"(now {lr:g}) or check the data"
            )


def _kept(last_good: int) -> str:
    return f"epoch {last_good}'s checkpoint stays the resumable state" if last_good else "nothing was saved"


def fit(
    model: ClassifierModel,
    items,
    transforms: tuple,
    settings: TrainSettings,
    run_dir: str | os.PathLike,
    device: torch.device | str = "cpu",
    identity: dict | None = None,
) -> list[dict]:
    """Train `model`'s adapters on `items`; returns the per-epoch history. Resumes from `run_dir`."""
    device = torch.device(device)
    info = distributed.current()
    run_dir = Path(run_dir)
    identity = _plain({"settings": asdict(settings), **(identity or {})})
    identity["settings"].pop("num_workers")
    identity["settings"].pop("log_every")
    for key, default in LATER_TRAIN_DEFAULTS.items():  # a run saved before these settings existed still resumes
        if identity["settings"].get(key) == default:
            identity["settings"].pop(key)
    precision = resolve(settings.precision, device)
    if settings.batch_size % info.world_size:
        raise ValueError(f"batch size {settings.batch_size} does not split over {info.world_size} processes")
    params = model.trainable_parameters()
    if not params:
        raise ValueError(f"method {model.method} has nothing to train")
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create run folder {run_dir} ({type(e).__name__}: {e.strerror or e})") from None
    lock = FileLock(str(run_dir / LOCK_FILE)) if info.is_main else None
    handler, owned, metrics = None, False, None
    try:
        if lock is not None:
            try:
                lock.acquire(timeout=0)
            except Timeout:
                lock = None
                raise RunBusyError(
                    f"{run_dir} is in use by another dra process (it holds {run_dir / LOCK_FILE}); "
                    "wait for it to finish, or use another --output"
                ) from None
            owned = True
            remove_orphans(run_dir)  # temp files of a killed atomic write
        handler = _file_logger(run_dir) if info.is_main else None
        metrics = MetricsLog(run_dir) if info.is_main else None  # metrics.csv (+ TensorBoard when installed)
        return _fit(model, params, items, transforms, settings, run_dir, device, identity, precision, info, metrics)
    except BaseException:
        if metrics is not None:
            metrics.close()
            metrics = None
        if handler:
            log.removeHandler(handler)
            handler.close()
            handler = None
        if owned and not (run_dir / RESUME_FILE).exists():
            _undo(run_dir, created)  # an early failure leaves nothing behind
        raise
    finally:
        if metrics is not None:
            metrics.close()
        if handler:
            log.removeHandler(handler)
            handler.close()
        if lock is not None:
            lock.release()


def _undo(run_dir: Path, created: list[Path]) -> None:
    """Remove what `fit` made in a run folder that never saved a checkpoint (log, lock, empty folders)."""
    # The adapters pair too: a first checkpoint whose resume state could not be written (a full disk) is
    # no run to resume or reuse.
    for name in (run_files.TRAIN_LOG, METRICS_FILE, LOCK_FILE, run_files.ADAPTERS_WEIGHTS, run_files.ADAPTERS_META):
        (run_dir / name).unlink(missing_ok=True)
    if (run_dir / TB_DIR).is_dir():
        import shutil

        shutil.rmtree(run_dir / TB_DIR, ignore_errors=True)
    for folder in created:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            break


def _fit(
    model,
    params,
    items,
    transforms,
    settings: TrainSettings,
    run_dir: Path,
    device,
    identity: dict,
    precision: str,
    info,
    metrics: MetricsLog | None = None,
) -> list[dict]:
    local_batch = settings.batch_size // info.world_size
    model.to(device)
    train_tf, test_tf = transforms
    dataset = ImageDataset(
        items, train_tf if settings.augment else test_tf, skip_bad=settings.skip_bad_images, seed=settings.seed
    )
    # Dassl: drop the last partial batch if one full exists (`drop_last: false` keeps it)
    drop_last = settings.drop_last and len(dataset) >= settings.batch_size
    steps_per_epoch = (
        len(dataset) // settings.batch_size if drop_last else math.ceil(len(dataset) / settings.batch_size)
    )
    epochs, budget = plan(settings, steps_per_epoch)
    opt, sched = build_optimizer(params, settings, budget)
    per_step = settings.schedule == "iteration"
    scaler = grad_scaler(precision, device)
    history: list[dict] = []
    start_epoch = 0

    legacy = run_dir / LEGACY_RESUME_FILE
    if legacy.exists():
        raise CheckpointError(
            f"{legacy} is a resume state of an older dra (a pickle); it is not loaded because unpickling can "
            "run code. Delete it to start this run over, or use another --output"
        )
    state_path = run_dir / RESUME_FILE
    if state_path.is_file():
        meta, tensors = read_resume_state(state_path)
        if meta["identity"] != identity:
            raise RunMismatchError(
                f"{run_dir} holds a run with other settings; use another --output or delete that folder "
                f"(saved: {meta['identity']}; now: {identity})"
            )
        _restore(state_path, meta, tensors, model, opt, sched, scaler)
        history, start_epoch = meta["history"], int(meta["epoch"])

    if start_epoch:
        log.info("resuming %s from epoch %d/%d", run_dir, start_epoch, epochs)
    if start_epoch >= epochs:
        return history

    sampler = DistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=settings.seed
    )
    net = model
    if info.enabled:
        find_unused = not getattr(getattr(model, "config", None), "learnable_scores", True)
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=find_unused
        )
    total_steps = budget - start_epoch * steps_per_epoch
    done_steps, started = 0, time.monotonic()
    if metrics is not None:  # curves: a resume drops the interrupted epoch's rows, then appends
        metrics.start(start_epoch, start_epoch * steps_per_epoch)

    model.train()
    for epoch in range(start_epoch, epochs):
        steps = min(steps_per_epoch, budget - epoch * steps_per_epoch)  # the budget's last epoch may be short
        _seed_epoch(settings.seed, epoch, info.rank)
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)  # per-item augmentation seeds: the same with any number of workers
        loader = DataLoader(
            dataset,
            batch_size=local_batch,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=settings.num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
        )
        lr = epoch_lr = opt.param_groups[0][
            "lr"
        ]  # per-step schedules: `lr` follows each step, the record keeps the first
        sums: dict[str, torch.Tensor] = {}
        guard = _NonFinite(device)
        seen, epoch_start = 0, time.monotonic()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=not info.is_main, unit="batch")
        batches = iter(bar)
        try:
            for step in range(steps):
                if per_step:
                    lr = opt.param_groups[0]["lr"]
                try:
                    images, labels = next(batches)
                except StopIteration:
                    break
                except DataError as e:  # from a worker: keep the message that names the file
                    raise DataError(_one_line(e)) from None
                images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
                with autocast(precision, device):
                    logits = net(images)
                loss, parts = model.loss(logits, labels)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                model.after_step(images, labels, opt, lambda: autocast(precision, device))
                if per_step:
                    sched.step()
                parts["loss"] = loss.detach()
                guard.update(step, parts)
                for k, v in parts.items():  # device-side sums: no sync per step
                    sums[k] = sums.get(k, 0) + v * len(labels)
                seen += len(labels)
                done_steps += 1
                if step % settings.log_every == 0 or step == steps - 1:
                    guard.check(epoch + 1, epochs, steps, epoch, lr)
                    current = float(parts["loss"])
                    rate = seen * info.world_size / max(time.monotonic() - epoch_start, 1e-9)
                    eta = (time.monotonic() - started) / done_steps * (total_steps - done_steps)
                    bar.set_postfix(loss=f"{current:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}", eta=f"{eta:.0f}s")
                    if info.is_main:
                        log.info(
                            "epoch %d/%d step %d/%d loss %.4f lr %.3e %.1f img/s eta %.0fs",
                            epoch + 1,
                            epochs,
                            step + 1,
                            steps,
                            current,
                            lr,
                            rate,
                            eta,
                        )
                        if metrics is not None:
                            metrics.step(
                                epoch + 1,
                                step + 1,
                                epoch * steps_per_epoch + step + 1,
                                {k: float(v) for k, v in parts.items()},
                                lr,
                                rate,
                                time.monotonic() - epoch_start,
                            )
        finally:
            bar.close()  # also on an error: the terminal keeps the error line, not a half bar
        guard.check(epoch + 1, epochs, steps, epoch, lr)  # never save a non-finite state
        if seen:
            guard.check_weights(model, epoch + 1, epochs, steps, epoch, lr, parts)
        if not per_step:
            sched.step()
        record = {
            "epoch": epoch + 1,
            "lr": epoch_lr,
            "images": seen * info.world_size,
            "seconds": time.monotonic() - epoch_start,
            **{k: float(v) / max(seen, 1) for k, v in sums.items()},
        }
        history.append(record)
        if info.is_main:
            if metrics is not None:  # before the checkpoint: a kill in between drops this row on resume
                metrics.epoch(epoch + 1, (epoch + 1) * steps_per_epoch, record)
            _end_of_epoch(model, run_dir, epoch + 1, identity, opt, sched, scaler, history)
            log.info("epoch %d done: %s", epoch + 1, {k: round(v, 5) for k, v in record.items()})
        distributed.barrier()
    return history


def _end_of_epoch(
    model: ClassifierModel, run_dir: Path, epoch: int, identity: dict, opt, sched, scaler, history
) -> None:
    """Atomic writes: the adapter checkpoint, then the resume state."""
    save_adapters(model, run_files.adapters_path(run_dir), extra={"epoch": epoch})
    save_resume_state(run_dir / RESUME_FILE, model, epoch, identity, opt, sched, scaler, history)
