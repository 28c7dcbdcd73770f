"""Rebuild the model a checkpoint was saved from (`dra.load_model`): backbone, method, adapters."""

from __future__ import annotations

import os

from dra.backbones import load_backbone
from dra.checkpoints.format import CheckpointError, checkpoint_paths, load_adapters, read_checkpoint
from dra.errors import one_line
from dra.methods import DEFAULT_TEMPLATE, build_method


def load_model(
    checkpoint: str | os.PathLike,
    pretrained: str | None = None,
    classnames: list[str] | None = None,
    adapters: bool = True,
):
    """Rebuild the model a checkpoint was saved from and load its adapters (`dra.load_model`).

    `pretrained` overrides where the backbone weights come from (the checkpoint records the source it
    was trained with, which may be a path on another machine; "" = random weights); `classnames`
    overrides the label space. The recorded path is read like `--pretrained`: tensors only. `adapters=False`
    keeps the method's freshly initialised adapters (the untrained reference of an analysis).
    """
    _, meta = read_checkpoint(checkpoint)
    source = pretrained if pretrained is not None else meta.get("pretrained")
    source = None if source in ("random", "") else source
    backbone = load_backbone(meta["model"], source, meta.get("quick_gelu"))
    try:
        model = build_method(
            meta["method"],
            backbone,
            classnames or meta["classnames"],
            meta.get("config") or None,
            meta.get("template", DEFAULT_TEMPLATE),
        )
    except (TypeError, ValueError, KeyError) as e:
        if classnames and "class name" in str(e):
            raise
        raise CheckpointError(
            f"checkpoint {checkpoint_paths(checkpoint)[1]} records settings that do not build a {meta['method']} model "
            f"({one_line(e)}); re-save the checkpoint (or restore its 'config')"
        ) from None
    if adapters:
        load_adapters(model, checkpoint)
    return model
