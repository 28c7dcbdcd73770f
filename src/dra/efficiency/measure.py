"""Paper Table 6 on the current device: trainable parameters, training and inference images/s, peak memory.

`measure_methods(["dra", "adapter", "zeroshot"])` measures the methods side by side in one process, on
one CLIP (random weights: speed and memory do not depend on the values) and one synthetic batch, and
returns one row per method:

    {"method", "trainable_params", "train_images_per_s", "infer_images_per_s", "peak_memory_mb",
     # extras: how and where it was measured
     "train_peak_memory_mb", "infer_peak_memory_mb", "train_images_per_s_median",
     "infer_images_per_s_median", "train_step_s", "infer_step_s", "train_x_zs_infer",
     "train_x_zs_infer_median", "model", "device", "precision", "batch_size", "steps", "warmup",
     "num_classes", "memory_measure"}

Training and inference steps run round-robin over the methods (a slow spell of a shared machine hits
all alike); when zero-shot CLIP is measured, each training round also runs one zero-shot inference
step, and `train_x_zs_infer` is a method's training images/s over zero-shot inference images/s of
the same rounds (the noise of a shared machine cancels in the ratio). Peak memory: the CUDA
allocator's peak, or on the CPU the live tensors plus the `torch.profiler` allocation peak. What is
timed and counted, exactly: benchmarks/README.md ("What is measured").

Over 400 lines on purpose: the argument checks, the peak-memory probe and the round-robin runner are one
measurement whose parts only make sense together.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

from dra.config import PAPER_SGD  # docs/design.md section 2; written once, as TrainSettings' defaults
from dra.engine.distributed import resolve_device
from dra.engine.precision import PRECISIONS, autocast, grad_scaler, resolve
from dra.errors import SettingsError

__all__ = ["PAPER_SGD", "PRECISIONS", "measure_methods", "share_weights"]

_MB = 2.0**20


# -- arguments -------------------------------------------------------------------------------------


def _check_methods(methods: Iterable[str]) -> list[str]:
    from dra.methods import METHODS

    if isinstance(methods, str):
        methods = [methods]
    names = list(dict.fromkeys(str(m) for m in methods))  # keep order, drop repeats
    if not names:
        raise SettingsError(f"no method to measure; choose from {sorted(METHODS)}")
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise SettingsError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    return names


# -- memory ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (Kineto prints profiler start/stop lines there on CPU-only machines)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _allocation_peak(prof) -> int | None:
    """Highest running sum of the profiler's allocation (+) and free (-) events, in bytes."""
    try:
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        events.sort(key=lambda e: e.start_ns())
    except AttributeError:  # a torch without Kineto results
        return None
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    return peak


class _PeakMemory:
    """Peak tensor memory of a phase, in MB: the CUDA allocator's peak, or live bytes + profiler peak on CPU."""

    def __init__(self, device: torch.device, live_bytes: int) -> None:
        self.device = device
        self.live_bytes = live_bytes
        self.mb: float | None = None
        self._prof = self._quiet = None

    def __enter__(self) -> _PeakMemory:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            from torch.profiler import ProfilerActivity, profile

            # Kineto and the CPU allocator write status lines to fd 2 while profiling: keep them quiet
            # (a Python exception still propagates and is printed once stderr is back)
            self._quiet = _quiet_stderr()
            self._quiet.__enter__()
            try:
                self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
                self._prof.__enter__()
            except BaseException:
                self._quiet.__exit__(None, None, None)
                raise
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mb = torch.cuda.max_memory_allocated(self.device) / _MB
            return
        try:
            self._prof.__exit__(*exc)
            peak = _allocation_peak(self._prof)
        finally:
            self._quiet.__exit__(None, None, None)
            self._prof = self._quiet = None
        self.mb = None if peak is None else (self.live_bytes + peak) / _MB


def _tensor_bytes(*sources: Any) -> int:
    """Bytes of the distinct storages behind the given modules' parameters/buffers and tensors."""
    seen: set[int] = set()
    total = 0
    for src in sources:
        tensors = list(src.parameters()) + list(src.buffers()) if isinstance(src, torch.nn.Module) else [src]
        for t in tensors:
            storage = t.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
    return total


# -- one method ------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def share_weights(backbone):
    """A second module tree over the same (frozen) weights, so that each method has its own hooks."""
    from dra.backbones import OpenCLIPBackbone

    memo = {id(t): t for t in list(backbone.clip.parameters()) + list(backbone.clip.buffers())}
    return OpenCLIPBackbone(copy.deepcopy(backbone.clip, memo), backbone.info)


class _Runner:
    """One method on its own view of the backbone: its training step and its inference step."""

    def __init__(
        self,
        name: str,
        model,
        images: torch.Tensor,
        labels: torch.Tensor,
        device: torch.device,
        precision: str,
        compiled: bool = False,
    ) -> None:
        self.name, self.device, self.precision = name, device, precision
        self.images, self.labels = images, labels
        self.model = model.to(device)
        self.call = torch.compile(self.model) if compiled else self.model
        self.params = self.model.trainable_parameters()
        self.trainable = bool(self.params)
        self.opt = torch.optim.SGD(self.params, **PAPER_SGD) if self.trainable else None
        self.scaler = grad_scaler(precision, device)  # only enabled for fp16 (CUDA)
        self.train_times: list[float] = []
        self.infer_times: list[float] = []
        self.ref_times: list[float] = []
        self.error: str | None = (
            None  # why a torch.compile row could not run  # zero-shot only: its inference steps inside the training rounds
        )

    def train_step(self) -> None:
        """zero_grad, forward (training mode), loss (CE + regularisation), backward, SGD step."""
        self.opt.zero_grad(set_to_none=True)
        with autocast(self.precision, self.device):
            logits = self.call(self.images)
            loss, _ = self.model.loss(logits, self.labels)
        self.scaler.scale(loss).backward()  # a no-op wrapper unless fp16
        self.scaler.step(self.opt)
        self.scaler.update()

    def infer_step(self) -> None:
        """Eval-mode forward, images -> logits, under no_grad; text features come from the cache."""
        with torch.no_grad(), autocast(self.precision, self.device):
            self.call(self.images)

    def to_eval(self) -> None:
        if self.opt is not None:
            self.opt.zero_grad(set_to_none=True)
        self.model.eval()
        with torch.no_grad(), autocast(self.precision, self.device):
            self.model.text_features()  # cached once per class set, as evaluation does

    def timed(self, step: Callable[[], None], into: list[float] | None) -> None:
        _sync(self.device)
        t0 = time.perf_counter()
        step()
        _sync(self.device)
        if into is not None:
            into.append(time.perf_counter() - t0)

    def close(self) -> None:
        self.model.unload()


def _rounds(runners: list[_Runner], step: str, steps: int, warmup: int) -> None:
    """Round-robin: every round runs one step of each method, so that slow spells hit all alike.

    Python's cyclic garbage collector is paused during the rounds (it would run at random moments).
    """
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for i in range(warmup + steps):
            for r in runners:
                if step == "train" and not r.trainable:
                    if r.name == "zeroshot":  # the reference of the training ratios, in the same rounds
                        r.timed(r.infer_step, None if i < warmup else r.ref_times)
                    continue
                if r.error is not None:
                    continue
                fn = r.train_step if step == "train" else r.infer_step
                try:
                    r.timed(fn, None if i < warmup else (r.train_times if step == "train" else r.infer_times))
                except Exception as e:  # noqa: BLE001 - a torch.compile row that does not compile here
                    if not r.name.endswith("+compile"):
                        raise
                    r.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
    finally:
        if was_enabled:
            gc.enable()


# -- public ----------------------------------------------------------------------------------------


def measure_methods(
    methods: Iterable[str] = ("dra", "adapter", "zeroshot"),
    model: str = "ViT-B-16",
    batch_size: int = 16,
    steps: int = 5,
    warmup: int = 2,
    device: str | None = None,
    num_classes: int = 10,
    precision: str = "auto",
    seed: int = 0,
    mma_source=None,
    compile: bool = False,
) -> list[dict[str, Any]]:
    """Measure each method's Table 6 columns side by side (see the module docstring for what exactly).

    Args:
        methods: names from `dra.methods.METHODS` ("dra", "adapter", "zeroshot"), measured in this order.
        model: open_clip model name; random weights are used (nothing is downloaded).
        batch_size, steps, warmup: images per step, measured steps, unmeasured warm-up steps per phase.
        device: "cpu", "cuda", "cuda:1"...; None picks CUDA when available.
        num_classes: how many class names the classifier has (the text side's cost in training).
        precision: "auto" (bf16 autocast on CUDA, fp32 on CPU), "fp32", "bf16" or "fp16".
        mma_source: a clone of ZjjConan/Multi-Modal-Adapter: adds a row "mma", MMA's own model built from
            that source (`dra.efficiency.mma`) over the same weights; None: no such row.
        compile: add rows "<method>+compile" (`torch.compile` of the model's forward) for dra and adapter.

    Returns:
        One dict per method with `method`, `trainable_params` (int), `train_images_per_s` (float, None
        for zero-shot), `infer_images_per_s` (float), `peak_memory_mb` (float or None) and the extras
        listed in the module docstring.

    Raises:
        ValueError: an unknown method, model, device or precision, or a non-positive size.
    """
    from dra.backbones import BackboneError, load_backbone

    names = _check_methods(methods)
    for label, value, low in (
        ("batch_size", batch_size, 1),
        ("steps", steps, 1),
        ("warmup", warmup, 0),
        ("num_classes", num_classes, 1),
    ):
        if int(value) != value or value < low:
            raise SettingsError(f"{label} must be an integer >= {low}, got {value!r}")
    dev = resolve_device(device)
    prec = resolve(precision, dev)
    try:
        backbone = load_backbone(model, pretrained=None)
    except BackboneError as e:
        raise SettingsError(str(e)) from e
    backbone.to(dev)

    gen = torch.Generator().manual_seed(seed)
    size = backbone.preprocess.image_size
    images = torch.randn(batch_size, 3, size, size, generator=gen).to(dev)
    labels = torch.randint(0, num_classes, (batch_size,), generator=gen).to(dev)
    classnames = [f"class {i}" for i in range(num_classes)]

    extras = {
        "model": model,
        "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
        "precision": prec,
        "batch_size": batch_size,
        "steps": steps,
        "warmup": warmup,
        "num_classes": num_classes,
        "memory_measure": "torch.cuda.max_memory_allocated"
        if dev.type == "cuda"
        else "live tensors + torch.profiler allocation peak",
    }
    runners: list[_Runner] = []
    try:
        from dra.methods import build_method

        plan = [(name, name, False) for name in names]
        if compile:
            plan += [(f"{name}+compile", name, True) for name in names if name != "zeroshot"]
        views = [backbone] + [share_weights(backbone) for _ in plan[1:]]  # before any wrapper is put in
        for (label, name, compiled), view in zip(plan, views):
            torch.manual_seed(seed)  # the same adapter initialisation whatever else is measured
            runners.append(_Runner(label, build_method(name, view, classnames), images, labels, dev, prec, compiled))
        if mma_source is not None:
            from dra.efficiency.mma import build_mma

            torch.manual_seed(seed)
            runners.append(_Runner("mma", build_mma(mma_source, backbone, classnames), images, labels, dev, prec))
        static = _tensor_bytes(backbone, images, labels)  # the weights are shared by all runners

        # 1. speed, round-robin over the methods: training, then inference
        for r in runners:
            r.model.train() if r.trainable else r.to_eval()
        _rounds(runners, "train", steps, warmup)
        for r in runners:
            r.to_eval()
        _rounds(runners, "infer", steps, warmup)

        # 2. memory, one method at a time, one untimed step per phase (after the warm-up above)
        rows = []
        ref = next((r.ref_times for r in runners if r.ref_times), None)
        for r in runners:
            if r.error is not None or not r.infer_times or (r.trainable and not r.train_times):
                rows.append(
                    {
                        "method": r.name,
                        "trainable_params": int(r.model.parameter_counts()["trainable"]),
                        "train_images_per_s": None,
                        "infer_images_per_s": None,
                        "peak_memory_mb": None,
                        "error": r.error,
                        **extras,
                    }
                )
                continue
            train_mb = None
            state = [
                t for st in (r.opt.state.values() if r.opt else []) for t in st.values() if isinstance(t, torch.Tensor)
            ]
            extra = _tensor_bytes(*r.params, *state)  # adapters and SGD momentum, live before the step
            if r.name == "mma":  # MMA's model holds its own CLIP weights
                extra += _tensor_bytes(r.model) - _tensor_bytes(*r.params)
            if r.trainable:
                r.model.train()
                with _PeakMemory(dev, static + extra) as mem:
                    r.train_step()
                train_mb = mem.mb
                r.opt.zero_grad(set_to_none=True)
            r.model.eval()
            r.model.clear_text_cache()  # so that every method's phase computes (and counts) it
            with _PeakMemory(dev, static + extra) as mem:
                r.to_eval()  # re-caches the text features (training mode dropped them)
                r.infer_step()
            infer_mb = mem.mb
            peaks = [m for m in (train_mb, infer_mb) if m is not None]
            rows.append(
                {
                    "method": r.name,
                    "trainable_params": int(r.model.parameter_counts()["trainable"]),
                    "train_images_per_s": batch_size / min(r.train_times) if r.trainable else None,
                    "infer_images_per_s": batch_size / min(r.infer_times),
                    "peak_memory_mb": max(peaks) if peaks else None,
                    "train_peak_memory_mb": train_mb,
                    "infer_peak_memory_mb": infer_mb,
                    "train_images_per_s_median": batch_size / statistics.median(r.train_times) if r.trainable else None,
                    "infer_images_per_s_median": batch_size / statistics.median(r.infer_times),
                    "train_x_zs_infer": min(ref) / min(r.train_times) if r.trainable and ref else None,
                    "train_x_zs_infer_median": statistics.median(ref) / statistics.median(r.train_times)
                    if r.trainable and ref
                    else None,
                    "train_step_s": [round(t, 6) for t in r.train_times] or None,
                    "infer_step_s": [round(t, 6) for t in r.infer_times],
                    **extras,
                }
            )
        return rows
    finally:
        for r in runners:
            r.close()
        runners.clear()
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
