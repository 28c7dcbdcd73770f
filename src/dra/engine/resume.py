"""The resume state of a run (`last.safetensors`): adapters + optimiser tensors in a safetensors file, the
epoch, run identity, history and optimiser / scheduler / scaler state as JSON in its metadata.

Nothing is unpickled; any problem reading it back is a one-line `CheckpointError` that says to delete
the file and start the run over.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from dra.checkpoints.format import CheckpointError, assign_adapters
from dra.errors import one_line as _one_line
from dra.io import atomic_write

if TYPE_CHECKING:  # the engine takes any method
    from dra.methods.base import ClassifierModel

_RESUME_KEYS = ("epoch", "identity", "history", "optimizer", "scheduler", "scaler")


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


def restore_resume_state(
    state_path: Path, meta: dict, tensors: dict, model: ClassifierModel, opt, sched, scaler
) -> None:
    """Put a resume state's adapters, optimiser, scheduler and scaler state back; a misfit is a CheckpointError."""
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
