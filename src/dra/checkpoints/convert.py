"""Import checkpoints trained with the methods' official code (Dassl's `model.pth.tar-N`) as dra checkpoints.

A Dassl checkpoint is a `torch.save`d dict with `state_dict` (the trainer's learner module) and `epoch`.
It is read with `torch.load(weights_only=True)`: tensors and plain containers only, never code.
Each method that can be imported says how, in its own file: its class's `official_layout`
(`dra.methods.official`: official key -> dra key, and the config the tensors imply). The names of the
official buffers that hold no learned value are dropped here, for every method (but
`tokenized_prompts` gives the class names when no `--classnames` file is given).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from dra.checkpoints.format import CheckpointError, assign_adapters, save_adapters
from dra.errors import refusal
from dra.methods import DEFAULT_TEMPLATE, all_methods, build_method, method_names
from dra.methods.official import FROZEN, OfficialLayout


def _own_layout(cls: type) -> OfficialLayout | None:
    """A class's own `official_layout`, never one inherited (CoCoOp derives from CoOp and learns more)."""
    return vars(cls).get("official_layout")


def importable() -> list[str]:
    """The methods whose official checkpoints can be imported (those with an `official_layout`)."""
    return [name for name, cls in all_methods().items() if _own_layout(cls) is not None]


def layout(method: str) -> OfficialLayout:
    found = _own_layout(all_methods()[method]) if method in method_names() else None
    if found is None:
        raise ValueError(f"no importer for method '{method}'; importable: {sorted(importable())}")
    return found


IGNORED = ("token_embedding", "tokenized_prompts", "token_prefix", "token_suffix")
"""Buffers of the official learners that hold no learned value (fixed token embeddings, tokenized prompts)."""


def convert(method: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official `state_dict` -> dra adapter tensors; an unknown key is an error naming it."""
    mapping = layout(method).key
    out = {}
    for key, value in state_dict.items():
        if key.startswith("module."):  # saved from nn.DataParallel
            key = key[len("module.") :]
        if key.split(".")[-1] in IGNORED:
            continue
        new = mapping(key)
        if new == FROZEN:
            continue
        if new is None:
            raise CheckpointError(
                f"the {method} checkpoint holds '{key}', which dra's {method} has no place for "
                f"(is it a {method} checkpoint?)"
            )
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(
                f"the {method} checkpoint's '{key}' holds non-finite values (NaN or infinity); a model made "
                "from it would predict nothing meaningful. Import a checkpoint of an epoch before training diverged"
            )
        out[new] = value.detach().to("cpu").float().contiguous()
    return out


def read_dassl(path: str | os.PathLike) -> dict:
    """A Dassl checkpoint (`model.pth.tar-N`, or `model-best.pth.tar`) as a dict with `state_dict`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - weights_only refuses anything that is not tensors/containers
        raise CheckpointError(
            f"{path} cannot be read as tensors only ({refusal(e)}); dra never unpickles code"
        ) from None
    if isinstance(data, dict) and "state_dict" not in data and all(torch.is_tensor(v) for v in data.values()):
        data = {"state_dict": data}
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), dict):
        raise CheckpointError(f"{path} is not a Dassl checkpoint (a dict with 'state_dict' and 'epoch')")
    return data


def classnames_from_tokens(tokens: torch.Tensor, decode: Callable[[list[int]], str], template: str) -> list[str]:
    """Class names back from the official `tokenized_prompts` ("a photo of a <name>."), as CLIP's
    tokenizer left them: lower case, punctuation set apart ("st . bernard")."""
    head, _, tail = (part.strip().lower() for part in template.partition("{}"))
    names = []
    for row in tokens.tolist():
        ids = [t for t in row if t != 0][1:-1]  # drop padding, SOT and EOT
        text = decode(ids).strip()
        if head and text.startswith(head):
            text = text[len(head) :].strip()
        if tail and text.endswith(tail):
            text = text[: -len(tail)].strip()
        names.append(text)
    return names


def import_checkpoint(
    source: str | os.PathLike,
    method: str,
    model: str,
    pretrained: str | None,
    output: str | os.PathLike,
    classnames: list[str] | None = None,
    template: str | None = None,
) -> dict:
    """Write a dra checkpoint (`output` .safetensors + .json) from an official Dassl checkpoint."""
    from dra.backbones import load_backbone

    official = layout(method)
    data = read_dassl(source)
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in data["state_dict"].items()}
    tensors = convert(method, state)
    template = template or DEFAULT_TEMPLATE
    backbone = load_backbone(model, pretrained)
    if classnames is None:
        tokens = state.get("tokenized_prompts")
        if tokens is None:
            raise CheckpointError(
                f"{source} holds no tokenized_prompts to read the class names from; "
                "give them with --classnames FILE (one per line)"
            )
        classnames = classnames_from_tokens(tokens, backbone.tokenizer.decode, template)
    try:
        config = official.config(tensors)
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    net = build_method(method, backbone, classnames, config, template)
    assign_adapters(net, tensors, source=str(source))
    epoch = data.get("epoch")
    extra = {"imported_from": str(source), "epoch": int(epoch) if isinstance(epoch, int) else None}
    path = save_adapters(net, output, extra=extra)
    return {
        "checkpoint": str(path),
        "method": method,
        "model": model,
        "classes": len(classnames),
        "epoch": extra["epoch"],
        "config": net.method_config(),
        "parameter_counts": net.parameter_counts(),
    }
