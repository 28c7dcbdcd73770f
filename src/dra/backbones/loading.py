"""Load an open_clip CLIP by name: OpenAI weights, a local checkpoint file, or random weights.

- `pretrained="openai"` (or any open_clip tag): taken from the local Hugging Face cache when present,
  otherwise downloaded by open_clip. Offline it fails at once with a message naming the fix.
- `pretrained="/path/file"`: an open_clip checkpoint (.pt/.bin/.safetensors, optionally under
  "state_dict") or an OpenAI CLIP file as OpenAI distributes it (TorchScript archive or state dict).
- `pretrained="pocket"` (a name of `dra.backbones.weights.PACKAGED`): weights shipped in the package.
- `pretrained=None`: the architecture with random weights, always the same ones (seed 0), for tests,
  offline demos and parameter counts.

OpenAI's CLIP uses QuickGELU; `quick_gelu=None` turns it on for the "openai" tag and OpenAI files,
so that `ViT-B-16` + OpenAI weights never silently runs the wrong activation.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import warnings
import zipfile
from pathlib import Path
from unittest import mock

import open_clip
import torch
from torch import nn

from dra.backbones.base import BackboneError, WeightsUnavailableError
from dra.backbones.torchscript import TorchScriptError, is_torchscript, read_torchscript_tensors
from dra.backbones.weights import packaged, packaged_file
from dra.errors import one_line, refusal

log = logging.getLogger(__name__)
_CONFIG_DIR = Path(__file__).with_name("model_configs")
_registered = False
_OPEN_CLIP_LOG = logging.getLogger("dra.open_clip")
_OPEN_CLIP_LOG.setLevel(logging.ERROR)


def register_model_configs() -> None:
    """Add the packaged model configs (ViT-Tiny-16-test) to open_clip's registry, at first use only."""
    global _registered
    if not _registered:
        open_clip.add_model_config(_CONFIG_DIR)
        _registered = True


def _read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], bool]:
    """The state dict in `path` and whether it is an OpenAI distribution file (a TorchScript archive,
    whose tensors are read without running its code: `dra.backbones.torchscript`)."""
    try:
        scripted = is_torchscript(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise BackboneError(f"weights file {path} cannot be read ({type(e).__name__}: {e})") from None
    if scripted:
        try:
            sd = read_torchscript_tensors(path)
        except (TorchScriptError, OSError, zipfile.BadZipFile, RuntimeError) as e:
            raise BackboneError(
                f"weights file {path} is a TorchScript archive whose tensors cannot be read without running "
                f"its code ({one_line(e)}); it was not loaded. Pass an OpenAI CLIP file as OpenAI distributes "
                "it, or the weights as safetensors"
            ) from None
        for key in ("input_resolution", "context_length", "vocab_size", "attn_mask"):  # not weights
            sd.pop(key, None)
        return sd, True
    return _read_plain_checkpoint(path), False


def _read_plain_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file, or a torch.save file read with weights_only=True: never unpickles code."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            checkpoint = load_file(str(path), device="cpu")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the error below says it all
                checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - UnpicklingError, RuntimeError, SafetensorError, EOFError...
        raise BackboneError(
            f"weights file {path} is not a readable checkpoint ({refusal(e)}); only tensors are loaded "
            "(safetensors, or torch.save files holding tensors and plain values)"
        ) from None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not checkpoint or not all(torch.is_tensor(v) for v in checkpoint.values()):
        raise BackboneError(f"weights file {path} holds no state dict of tensors")
    if next(iter(checkpoint)).startswith("module."):
        checkpoint = {k[len("module.") :]: v for k, v in checkpoint.items()}
    return checkpoint


def _hub_reachable(host: str = "huggingface.co") -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _cached_or_downloaded(model_name: str, tag: str) -> str:
    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise BackboneError(
            f"'{tag}' is neither a file nor a known open_clip tag for {model_name} (tags: {tags}); "
            "pass --pretrained /path/to/checkpoint for a local file"
        )
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import hf_hub_download

        repo_id = "/".join(hub.strip("/").split("/")[:2])
        for fname in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            try:
                return hf_hub_download(repo_id, fname, local_files_only=True)
            except Exception:  # noqa: BLE001 - not cached under this name
                continue
    if not _hub_reachable():
        raise WeightsUnavailableError(
            f"pretrained weights '{tag}' for {model_name} are not in the local cache and the model hub "
            "cannot be reached (offline). Download them on a connected machine (they land in the "
            "Hugging Face cache, ~/.cache/huggingface) or pass a local file: --pretrained "
            f"/path/to/{model_name}.pt (an OpenAI CLIP .pt or an open_clip checkpoint)"
        )
    try:
        return open_clip.download_pretrained(cfg)
    except Exception as e:  # noqa: BLE001
        raise WeightsUnavailableError(
            f"downloading '{tag}' weights for {model_name} failed ({e}); pass a local file with "
            "--pretrained /path/to/checkpoint"
        ) from e


def open_clip_quietly():
    """open_clip's factory logs through the root logger's module functions (which also call
    logging.basicConfig when the root has no handler) and warns "initialized randomly" even when
    weights follow. Inside this context it logs to a logger of dra's own at ERROR instead, so that a
    user's logging stays untouched."""
    return mock.patch.object(importlib.import_module("open_clip.factory"), "logging", _OPEN_CLIP_LOG)


def create_clip(
    model_name: str = "ViT-B-16", pretrained: str | os.PathLike | None = None, quick_gelu: bool | None = None
) -> tuple[nn.Module, dict]:
    """Build the open_clip model and return it with the weights' description (for checkpoints)."""
    register_model_configs()
    if model_name not in open_clip.list_models():
        raise BackboneError(
            f"unknown model '{model_name}'; open_clip knows e.g. ViT-B-16, ViT-B-32, ViT-L-14 "
            f"(all: open_clip.list_models())"
        )
    state, openai_file, source = None, False, "random"
    if packaged(pretrained) is not None:  # weights shipped in the package (the pocket CLIP): backbones/weights.py
        entry = packaged(pretrained)
        (state, _), source = _read_state_dict(packaged_file(entry, model_name)), entry.name
    elif pretrained is not None and str(pretrained) != "":
        path = Path(pretrained).expanduser()
        if path.is_file():
            state, openai_file = _read_state_dict(path)
            source = str(path)
        elif any(sep in str(pretrained) for sep in ("/", "\\")) or path.suffix in (".pt", ".bin", ".safetensors"):
            raise BackboneError(f"checkpoint file {path} does not exist; check the --pretrained path")
        else:
            state, _ = _read_state_dict(Path(_cached_or_downloaded(model_name, str(pretrained))))
            openai_file = str(pretrained) == "openai"
            source = str(pretrained)
    if quick_gelu is None:
        quick_gelu = openai_file
    with open_clip_quietly():
        # Random weights are seeded (0) without touching the caller's RNG: every process and every
        # session builds the same "random" backbone, so checkpoints trained on it stay loadable.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = open_clip.create_model(model_name, pretrained=None, force_quick_gelu=bool(quick_gelu))
    if state is not None:
        try:
            if "logit_scale" in state and model.logit_scale.ndim != state["logit_scale"].ndim:
                state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            raise BackboneError(
                f"weights {source} do not fit model {model_name} ({first}); pass the --model the "
                "checkpoint was trained as"
            ) from e
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    uses_quick_gelu = bool(quick_gelu) or bool(open_clip.get_model_config(model_name).get("quick_gelu", False))
    info = {"model": model_name, "pretrained": source, "quick_gelu": uses_quick_gelu}
    return model, info
