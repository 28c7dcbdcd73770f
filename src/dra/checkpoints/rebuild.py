"""Rebuild the model a checkpoint was saved from (`dra.load_model`): backbone, method, adapters."""

from __future__ import annotations

import os

from dra.backbones import load_backbone
from dra.checkpoints.format import CheckpointError, checkpoint_paths, load_adapters, read_checkpoint
from dra.errors import one_line
from dra.methods import DEFAULT_TEMPLATE, build_method


def backbone_args(meta: dict, pretrained: str | None = None) -> tuple:
    """`load_backbone`'s arguments for a checkpoint's metadata: (model, weights source, quick_gelu);
    `pretrained` overrides the recorded source ("" or "random": random weights, None)."""
    source = pretrained if pretrained is not None else meta.get("pretrained")
    return meta["model"], (None if source in ("random", "") else source), meta.get("quick_gelu")


def load_model(
    checkpoint: str | os.PathLike,
    pretrained: str | None = None,
    classnames: list[str] | None = None,
    adapters: bool = True,
    backbone=None,
):
    """Rebuild the model a checkpoint was saved from and load its adapters (`dra.load_model`).

    `pretrained` overrides where the backbone weights come from (the checkpoint records the source it
    was trained with, which may be a path on another machine; "" = random weights); `classnames`
    overrides the label space. The recorded path is read like `--pretrained`: tensors only. `adapters=False`
    keeps the method's freshly initialised adapters (the untrained reference of an analysis). `backbone`: one
    already loaded with `load_backbone(*backbone_args(meta, pretrained))`, to build several models on in turn
    (the model wraps its blocks; `model.unload()` hands it back plain).
    """
    _, meta = read_checkpoint(checkpoint)
    if backbone is None:
        backbone = load_backbone(*backbone_args(meta, pretrained))
    elif backbone.name != meta["model"]:
        raise CheckpointError(
            f"checkpoint {checkpoint_paths(checkpoint)[1]} is a {meta['model']} model, not {backbone.name}: "
            "load its own backbone (leave `backbone` out)"
        )
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
