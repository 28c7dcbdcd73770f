"""The training loop: Dassl's semantics (per-epoch cosine, last epoch kept), resumable, DDP-ready.

Every epoch ends with two atomic writes in the run folder:
- `adapters.safetensors` + `adapters.json`: the adapter-only checkpoint (dra.load_model reads it);
- `last.safetensors`: adapters + optimiser tensors, with the optimiser/scheduler/scaler state and the
  history as JSON in its metadata, to resume a killed run. Nothing is unpickled: a `last.pt` of
  older versions (a pickle) is refused, never loaded.
Each epoch reseeds the RNGs from (seed, epoch, rank), so a resumed run continues exactly as an
uninterrupted one would have. A non-finite loss stops training (`TrainingDivergedError`) before
anything of that epoch is saved. The main process holds a lock on the run folder while it trains.
The optimiser and schedule are `engine/optim.py`; the resume state's format is `engine/resume.py`.
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
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from dra import run_files
from dra.checkpoints.format import CheckpointError, save_adapters
from dra.config import LATER_TRAIN_DEFAULTS, TrainSettings
from dra.data import DataError, ImageDataset
from dra.engine import distributed
from dra.engine.metrics_log import METRICS_FILE, TB_DIR, MetricsLog
from dra.engine.optim import build_optimizer, plan
from dra.engine.precision import autocast, grad_scaler, resolve
from dra.engine.resume import read_resume_state, restore_resume_state, save_resume_state
from dra.errors import DraError, SettingsError
from dra.errors import one_line as _one_line
from dra.io import OutputError, remove_orphans
from dra.run_files import LEGACY_RESUME_FILE, LOCK_FILE, RESUME_FILE

if TYPE_CHECKING:  # the engine takes any method; no import cycle at runtime
    from dra.methods.base import ClassifierModel

log = logging.getLogger("dra.train")


class RunMismatchError(DraError, RuntimeError):
    """A run folder holds a run with other settings."""


class RunBusyError(DraError, RuntimeError):
    """Another process is training in this run folder."""


class TrainingDivergedError(DraError, RuntimeError):
    """The loss became NaN or infinite; nothing of the epoch was saved."""


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
        raise SettingsError(f"batch size {settings.batch_size} does not split over {info.world_size} processes")
    params = model.trainable_parameters()
    if not params:
        raise SettingsError(f"method {model.method} has nothing to train")
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
        restore_resume_state(state_path, meta, tensors, model, opt, sched, scaler)
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
