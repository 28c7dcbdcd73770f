"""Paper Table 6 on the current device: trainable parameters, training and inference images/s, peak memory.

`measure_methods(["dra", "adapter", "zeroshot"])` measures every method side by side in one process,
on one backbone (random weights: speed and memory do not depend on the weights) and on one synthetic
batch, and returns one row per method:

    {"method", "trainable_params", "train_images_per_s", "infer_images_per_s", "peak_memory_mb",
     # extras: how and where it was measured
     "train_peak_memory_mb", "infer_peak_memory_mb", "model", "device", "precision", "batch_size",
     "steps", "warmup", "num_classes", "memory_measure"}

What is measured, exactly:

- **Input.** One batch of `batch_size` random images (N(0, 1), the backbone's image size, already
  "normalised") with random labels over `num_classes` class names ("class 0", "class 1", ...), made
  once and used by every method. Data loading and augmentation are not part of any figure.
- **Training images/s** = `batch_size / median step time` over `steps` measured steps, after
  `warmup` unmeasured ones. A step is what training does per batch: `zero_grad`, forward in training
  mode (DRA: token scores, Gumbel noise, sorting, masks, and the unmasked reference pass of the L1
  term; the text adapters train, so every step re-encodes all class prompts from the first adapted
  text block on), `model.loss` (cross-entropy + the methods' regularisation), backward, and an SGD step
  with the paper's lr 0.0015, momentum 0.9, weight decay 5e-4. Zero-shot CLIP has nothing to train:
  its training throughput is `None`.
- **Inference images/s** = `batch_size / median step time` of an eval-mode forward (images -> logits)
  under `torch.no_grad()`. The class-prompt text features are computed once before timing and reused,
  as evaluation does; DRA in eval mode is a plain adapter (Eq. 18: no scores, no mask, no noise).
- The median (not the mean) of per-step times keeps a stray slow step (another process on the same
  cores) from moving the figure. On CUDA every step is bracketed by `torch.cuda.synchronize()`.
- **Precision.** `precision="auto"`: autocast to bfloat16 on CUDA (float16 with a GradScaler where the
  GPU has no bfloat16), float32 on the CPU. `"fp32"`, `"bf16"`, `"fp16"` force one.
- **Peak memory** (MB = 2**20 bytes), per phase (training: warm-up + measured steps; inference: text
  caching + warm-up + measured steps); `peak_memory_mb` is the larger of the two, i.e. what running the
  method needs (zero-shot: inference only).
  - CUDA: `torch.cuda.max_memory_allocated` after `torch.cuda.reset_peak_memory_stats`, with the
    previous methods' tensors freed: every live tensor at the phase's peak (backbone and adapter
    weights, the batch, gradients, optimizer state, activations, cached text features). The caching
    allocator's reserved-but-free memory is not counted.
  - CPU: there is no allocator counter, so it is the bytes of the method's weights (backbone +
    adapters) and of the batch, plus the growth of the process's private resident memory during the
    phase: the highest `resident - shared` of `/proc/self/statm`, sampled every millisecond by a
    background thread, minus its value at the start of the phase (taken after `gc.collect()` and glibc
    `malloc_trim(0)`, so that memory freed by earlier phases does not hide this phase's needs). This
    counts activations, gradients, optimizer state and also allocator overhead; file-backed pages
    (shared libraries) are excluded. It is an estimate, good to a few percent; `None` where
    `/proc/self/statm` does not exist.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import statistics
import threading
import time
from typing import Any, Callable, Iterable

import torch

__all__ = ["measure_methods", "PAPER_SGD", "PRECISIONS"]

PAPER_SGD = {"lr": 0.0015, "momentum": 0.9, "weight_decay": 5e-4}  # DESIGN.md section 2
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_MB = 2.0 ** 20


# -- arguments -------------------------------------------------------------------------------------

def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device '{device}'; use cpu, cuda or cuda:N") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device '{device}' asked for, but CUDA is not available here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device '{device}' does not exist: {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ValueError(f"device '{device}' is not supported; use cpu, cuda or cuda:N")
    return dev


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _check_methods(methods: Iterable[str]) -> list[str]:
    from dra.methods import METHODS

    if isinstance(methods, str):
        methods = [methods]
    names = list(dict.fromkeys(str(m) for m in methods))  # keep order, drop repeats
    if not names:
        raise ValueError(f"no method to measure; choose from {sorted(METHODS)}")
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    return names


# -- memory ----------------------------------------------------------------------------------------

def _malloc_trim() -> None:
    """Give memory freed to glibc back to the OS, so that RSS growth reflects the next phase."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _private_resident_bytes() -> int | None:
    """`resident - shared` of /proc/self/statm: anonymous memory in RAM (heap, tensors), no file pages."""
    try:
        with open("/proc/self/statm") as f:
            fields = f.read().split()
        return (int(fields[1]) - int(fields[2])) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


class _PeakMemory:
    """Peak memory of a phase: CUDA allocator peak, or CPU private-RSS growth sampled by a thread."""

    def __init__(self, device: torch.device, static_bytes: int, interval: float = 0.001) -> None:
        self.device = device
        self.static_bytes = static_bytes
        self.interval = interval
        self.mb: float | None = None
        self._stop = threading.Event()
        self._peak = 0
        self._start: int | None = None
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            v = _private_resident_bytes()
            if v is not None and v > self._peak:
                self._peak = v
            self._stop.wait(self.interval)

    def __enter__(self) -> "_PeakMemory":
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            _malloc_trim()
            self._start = _private_resident_bytes()
            if self._start is not None:
                self._peak = self._start
                self._thread = threading.Thread(target=self._sample, name="dra-peak-rss", daemon=True)
                self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mb = torch.cuda.max_memory_allocated(self.device) / _MB
            return
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            last = _private_resident_bytes()
            peak = max(self._peak, last or 0)
            self.mb = (self.static_bytes + peak - self._start) / _MB


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


# -- timing ----------------------------------------------------------------------------------------

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step: Callable[[], None], steps: int, warmup: int, device: torch.device) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


# -- one method ------------------------------------------------------------------------------------

def _measure_one(name: str, backbone, classnames: list[str], images: torch.Tensor, labels: torch.Tensor,
                 steps: int, warmup: int, device: torch.device, precision: str) -> dict[str, Any]:
    from dra.methods import build_method

    model = build_method(name, backbone, classnames).to(device)
    try:
        params = model.trainable_parameters()
        row: dict[str, Any] = {"method": name, "trainable_params": int(model.parameter_counts()["trainable"])}
        static = _tensor_bytes(model, images, labels)
        batch = images.shape[0]

        # training: zero_grad, forward, loss (CE + regularisation), backward, SGD step
        train_ips, train_mb = None, None
        if params:
            opt = torch.optim.SGD(params, **PAPER_SGD)
            scaler = torch.amp.GradScaler(device.type) if precision == "fp16" and device.type == "cuda" else None
            model.train()

            def train_step() -> None:
                opt.zero_grad(set_to_none=True)
                with _autocast(device, precision):
                    logits = model(images)
                    loss, _ = model.loss(logits, labels)
                if scaler is None:
                    loss.backward()
                    opt.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()

            with _PeakMemory(device, static) as mem:
                times = _timed(train_step, steps, warmup, device)
            train_ips, train_mb = batch / statistics.median(times), mem.mb
            opt.zero_grad(set_to_none=True)
            del opt, scaler, train_step

        # inference: eval mode, no_grad, text features cached once per class set
        model.eval()

        def infer_step() -> None:
            with torch.no_grad(), _autocast(device, precision):
                model(images)

        with _PeakMemory(device, static) as mem:
            with torch.no_grad(), _autocast(device, precision):
                model.text_features()  # cache, as evaluation does, outside the timed steps
            times = _timed(infer_step, steps, warmup, device)
        infer_ips, infer_mb = batch / statistics.median(times), mem.mb

        peaks = [m for m in (train_mb, infer_mb) if m is not None]
        row.update({
            "train_images_per_s": train_ips,
            "infer_images_per_s": infer_ips,
            "peak_memory_mb": max(peaks) if peaks else None,
            "train_peak_memory_mb": train_mb,
            "infer_peak_memory_mb": infer_mb,
        })
        return row
    finally:
        if hasattr(model, "remove_hooks"):
            model.remove_hooks()  # the backbone is plain CLIP again for the next method
        del model
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


# -- public ----------------------------------------------------------------------------------------

def measure_methods(methods: Iterable[str] = ("dra", "adapter", "zeroshot"), model: str = "ViT-B-16",
                    batch_size: int = 16, steps: int = 5, warmup: int = 2, device: str | None = None,
                    num_classes: int = 10, precision: str = "auto", seed: int = 0) -> list[dict[str, Any]]:
    """Measure each method's Table 6 columns side by side (see the module docstring for what exactly).

    Args:
        methods: names from `dra.methods.METHODS` ("dra", "adapter", "zeroshot"), measured in this order.
        model: open_clip model name; random weights are used (nothing is downloaded).
        batch_size, steps, warmup: images per step, measured steps, unmeasured warm-up steps per phase.
        device: "cpu", "cuda", "cuda:1"...; None picks CUDA when available.
        num_classes: how many class names the classifier has (the text side's cost in training).
        precision: "auto" (bf16 autocast on CUDA, fp32 on CPU), "fp32", "bf16" or "fp16".

    Returns:
        One dict per method with `method`, `trainable_params` (int), `train_images_per_s` (float, None
        for zero-shot), `infer_images_per_s` (float), `peak_memory_mb` (float or None) and the extras
        listed in the module docstring.

    Raises:
        ValueError: an unknown method, model, device or precision, or a non-positive size.
    """
    from dra.backbones import BackboneError, load_backbone

    names = _check_methods(methods)
    for label, value, low in (("batch_size", batch_size, 1), ("steps", steps, 1), ("warmup", warmup, 0),
                              ("num_classes", num_classes, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"{label} must be an integer >= {low}, got {value!r}")
    dev = _resolve_device(device)
    prec = _resolve_precision(precision, dev)
    try:
        backbone = load_backbone(model, pretrained=None)
    except BackboneError as e:
        raise ValueError(str(e)) from e
    backbone.to(dev)

    gen = torch.Generator().manual_seed(seed)
    size = backbone.preprocess.image_size
    images = torch.randn(batch_size, 3, size, size, generator=gen).to(dev)
    labels = torch.randint(0, num_classes, (batch_size,), generator=gen).to(dev)
    classnames = [f"class {i}" for i in range(num_classes)]

    extras = {"model": model, "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
              "precision": prec, "batch_size": batch_size, "steps": steps, "warmup": warmup,
              "num_classes": num_classes,
              "memory_measure": "cuda max_memory_allocated" if dev.type == "cuda"
              else "weights + batch + private RSS growth"}
    rows = []
    for name in names:
        torch.manual_seed(seed)  # same adapter init and Gumbel draws whatever ran before
        row = _measure_one(name, backbone, classnames, images, labels, steps, warmup, dev, prec)
        rows.append({**row, **extras})
    return rows
