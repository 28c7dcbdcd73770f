"""Adapter-only checkpoints: `<stem>.safetensors` (weights) + `<stem>.json` (what they fit).

The JSON names the method, the backbone (model name and weights), the method config and the class
names, so that a checkpoint is loaded only onto a model it fits and can rebuild that model alone.
Writes are atomic (temp file + os.replace): an interrupted save never leaves a half file.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from dra.errors import DraError, one_line
from dra.io import atomic_write, atomic_write_text
from dra.labels import check_classnames, check_template

if TYPE_CHECKING:  # annotations only: the format needs no method's code
    from dra.methods.base import ClassifierModel

FORMAT_VERSION = 1


class CheckpointError(DraError, RuntimeError):
    """A checkpoint is missing, corrupt or does not fit the model; the message names both sides."""


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_suffix(".safetensors"), p.with_suffix(".json")


def describe(model: ClassifierModel) -> dict[str, Any]:
    """What a checkpoint of `model` must match: method, backbone, config."""
    info = model.backbone.info
    return {
        "method": model.method,
        "model": info["model"],
        "pretrained": info["pretrained"],
        "quick_gelu": info["quick_gelu"],
        "config": model.method_config(),
        "template": model.template,
    }


def save_adapters(model: ClassifierModel, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Save the trainable tensors of `model`; returns the .safetensors path."""
    weights_path, meta_path = checkpoint_paths(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.adapter_state_dict().items()}
    save_id = uuid.uuid4().hex  # both files carry it: a pair from two different saves is refused
    meta = {
        "format_version": FORMAT_VERSION,
        **describe(model),
        "classnames": list(model.classnames),
        "parameter_counts": model.parameter_counts(),
        "save_id": save_id,
        **model.checkpoint_metadata(),
        **(extra or {}),
    }
    atomic_write(weights_path, lambda tmp: save_file(tensors, tmp, metadata={"dra": "adapters", "save_id": save_id}))
    atomic_write_text(meta_path, json.dumps(meta, indent=2))
    return weights_path


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    weights_path, meta_path = checkpoint_paths(path)
    for p in (weights_path, meta_path):
        if not p.is_file():
            raise CheckpointError(f"checkpoint file {p} not found: a checkpoint is a .safetensors + .json pair")
    try:
        meta = json.loads(meta_path.read_text())
        tensors = load_file(str(weights_path))
        with safe_open(str(weights_path), "pt") as f:
            weights_id = (f.metadata() or {}).get("save_id")
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(
            f"checkpoint {weights_path} is unreadable or corrupt ({one_line(e)}); re-save or re-train it"
        ) from None
    if not isinstance(meta, dict) or not all(k in meta for k in ("method", "model", "classnames")):
        raise CheckpointError(
            f"checkpoint {meta_path} is not a dra adapter description "
            "(it needs method, model and classnames); re-save or re-train it"
        )
    _check_meta(meta, meta_path)
    bad = next((k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise CheckpointError(
            f"checkpoint {weights_path} holds non-finite values (NaN or infinity) in {bad}; it would predict "
            "nothing meaningful. Re-train it, or load an earlier epoch's checkpoint"
        )
    if weights_id != meta.get("save_id"):
        raise CheckpointError(
            f"checkpoint {weights_path} and {meta_path.name} come from two different saves (a save "
            "was interrupted between the two files); re-save or re-train it"
        )
    return tensors, meta


_META_TYPES = {
    "method": (str,),
    "model": (str,),
    "pretrained": (str, type(None)),
    "quick_gelu": (bool, type(None)),
    "config": (dict, type(None)),
}


def _check_meta(meta: dict, meta_path: Path) -> None:
    """The description's fields have the types dra writes; an edited or foreign one is one error naming it."""
    for key, types in _META_TYPES.items():
        if key in meta and not isinstance(meta[key], types):
            raise CheckpointError(
                f"checkpoint {meta_path}: '{key}' must be {' or '.join(t.__name__ for t in types)}, got "
                f"{meta[key]!r}; re-save the checkpoint (or restore that field)"
            )
    try:
        check_classnames(meta["classnames"], "'classnames'")
        if "template" in meta:
            check_template(meta["template"], "'template'")
    except ValueError as e:
        raise CheckpointError(f"checkpoint {meta_path}: {e}; re-save the checkpoint (or restore that field)") from None


def _differences(saved: dict, current: dict) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [
        f"{k}: checkpoint {saved.get(k)!r} vs model {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)
    ]


def load_adapters(model: ClassifierModel, path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint onto `model`, after checking that method, backbone and config match."""
    tensors, meta = read_checkpoint(path)
    here = describe(model)
    problems = []
    for key in ("method", "model"):
        if meta.get(key) != here[key]:
            problems.append(f"{key}: checkpoint {meta.get(key)!r} vs model {here[key]!r}")
    problems += [f"config.{d}" for d in _differences(meta.get("config", {}), here["config"])]
    if problems:
        raise CheckpointError(
            f"checkpoint {checkpoint_paths(path)[0]} (method {meta.get('method')}, model {meta.get('model')}) does not fit "
            f"this model (method {here['method']}, model {here['model']}): "
            + "; ".join(problems)
            + ". Build the model with the checkpoint's settings, e.g. dra.load_model(checkpoint)"
        )
    assign_adapters(model, tensors, source=str(checkpoint_paths(path)[0]))
    model.load_checkpoint_metadata(meta)
    return meta


def assign_adapters(model: ClassifierModel, tensors: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Copy saved adapter tensors into `model` (names and shapes must match exactly)."""
    model.resize_for(tensors)
    own = model.adapter_state_dict()
    if set(own) != set(tensors) or any(own[k].shape != tensors[k].shape for k in own):
        raise CheckpointError(f"{source} holds other tensors than this model's adapters")
    model.load_adapter_state_dict(tensors)
