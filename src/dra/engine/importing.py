"""Import checkpoints trained with the methods' official code (Dassl's `model.pth.tar-N`) as dra checkpoints.

A Dassl checkpoint is a `torch.save`d dict with `state_dict` (the trainer's learner module) and `epoch`.
It is read with `torch.load(weights_only=True)`: tensors and plain containers only, never code.
Each method that can be imported has a key mapping here (`IMPORTERS[method]`): official key -> dra key,
and the names of the official buffers that are not learned (dropped, but `tokenized_prompts` gives the
class names when no `--classnames` file is given).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import torch

from dra.engine.checkpoint import CheckpointError
from dra.errors import refusal


def mma_key(key: str) -> str | None:
    """ZjjConan/Multi-Modal-Adapter `adapter_learner` keys -> dra MMA keys (None: not learned)."""
    m = re.fullmatch(r"(text|visual)_adapter\.(\d+)\.(down\.0|up)\.(weight|bias)", key)
    if m:
        tower = "text" if m[1] == "text" else "image"
        part = "down" if m[3] == "down.0" else "up"
        return f"adapters.{tower}.{m[2]}.{part}.{m[4]}"
    m = re.fullmatch(r"shared_adapter\.(\d+)\.0\.(weight|bias)", key)
    if m:
        return f"adapters.shared.{m[1]}.{m[2]}"
    return None


FROZEN = ""
"""What a key mapping returns for a key of the official checkpoint that holds frozen CLIP weights."""


def coop_key(key: str) -> str | None:
    """KaiyangZhou/CoOp `prompt_learner` keys (Dassl saves the prompt learner alone): the context."""
    return "context.ctx" if key in ("ctx", "prompt_learner.ctx") else None


def maple_key(key: str) -> str | None:
    """muzairkhattak/multimodal-prompt-learning: Dassl saves the whole CustomCLIP under
    "MultiModalPromptLearner"; the frozen encoders are skipped, the prompt learner maps to dra's MaPLe."""
    if key.startswith(("image_encoder.", "text_encoder.")) or key in ("logit_scale", "tokenized_prompts"):
        return FROZEN
    key = key.removeprefix("prompt_learner.")
    if key == "ctx":
        return "context.ctx"
    m = re.fullmatch(r"proj\.(weight|bias)", key)
    if m:
        return f"deep.couplings.0.{m[1]}"
    m = re.fullmatch(r"compound_prompts_text\.(\d+)", key)
    if m:
        return f"deep.deep_text.{m[1]}"
    m = re.fullmatch(r"compound_prompt_projections\.(\d+)\.(weight|bias)", key)
    if m:
        return f"deep.couplings.{int(m[1]) + 1}.{m[2]}"
    return None


IMPORTERS: dict[str, Callable[[str], str | None]] = {"mma": mma_key, "coop": coop_key, "maple": maple_key}
"""method -> official key mapping (official key -> dra key; FROZEN: skipped; None: not this method's)."""
IGNORED = ("token_embedding", "tokenized_prompts", "token_prefix", "token_suffix")
"""Buffers of the official learners that hold no learned value (fixed token embeddings, tokenized prompts)."""


def convert(method: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official `state_dict` -> dra adapter tensors; an unknown key is an error naming it."""
    if method not in IMPORTERS:
        raise ValueError(f"no importer for method '{method}'; importable: {sorted(IMPORTERS)}")
    mapping = IMPORTERS[method]
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


def mma_config(tensors: dict[str, torch.Tensor]) -> dict:
    """MMA's config from the imported tensors: adapted blocks and adapter width as the checkpoint has them."""
    blocks = sorted({int(k.split(".")[2]) for k in tensors if k.startswith("adapters.shared.")})
    if not blocks:
        raise CheckpointError("the mma checkpoint holds no shared adapter")
    if blocks != list(range(blocks[0], blocks[-1] + 1)):
        raise CheckpointError(f"the mma checkpoint's adapted blocks {blocks} are not one contiguous range")
    dim = tensors[f"adapters.shared.{blocks[0]}.weight"].shape[0]
    return {"dim": int(dim), "start_layer": blocks[0], "end_layer": blocks[-1]}


def coop_config(tensors: dict[str, torch.Tensor]) -> dict:
    """CoOp's context length from the checkpoint: 4 is the published "a photo of a" init (its words are
    replaced by the context anyway); another length reads as that many placeholders."""
    n = int(tensors["context.ctx"].shape[0])
    return {"ctx_init": "a photo of a"} if n == 4 else {"ctx_init": "", "n_ctx": n}


def maple_config(tensors: dict[str, torch.Tensor]) -> dict:
    """MaPLe's prompt length and depth from the checkpoint; the prompt text is the published "a photo of a"."""
    depth = 1 + sum(1 for k in tensors if k.startswith("deep.deep_text."))
    return {"ctx_init": "a photo of a", "n_ctx": int(tensors["context.ctx"].shape[0]), "depth": depth}


CONFIGS: dict[str, Callable[[dict[str, torch.Tensor]], dict]] = {
    "mma": mma_config,
    "coop": coop_config,
    "maple": maple_config,
}
"""method -> the method config the imported tensors imply (blocks, widths)."""


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
    from dra.engine.checkpoint import assign_adapters, save_adapters
    from dra.methods import DEFAULT_TEMPLATE, build_method

    if method not in IMPORTERS:
        raise ValueError(f"no importer for method '{method}'; importable: {sorted(IMPORTERS)}")
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
    net = build_method(method, backbone, classnames, CONFIGS[method](tensors), template)
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
