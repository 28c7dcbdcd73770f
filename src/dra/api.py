"""The few calls a Python user needs: build a model, and rebuild one from a saved checkpoint."""
from __future__ import annotations

import os

from dra.backbones import load_backbone
from dra.config import DRAConfig
from dra.engine.checkpoint import load_adapters, read_checkpoint
from dra.methods import DEFAULT_TEMPLATE, ClassifierModel, build_method


def create_model(classnames: list[str], method: str = "dra", model: str = "ViT-B-16",
                 pretrained: str | None = "openai", config: DRAConfig | dict | None = None,
                 template: str = DEFAULT_TEMPLATE, quick_gelu: bool | None = None) -> ClassifierModel:
    """CLIP (frozen) + the method's adapters, ready to map images to logits over `classnames`."""
    backbone = load_backbone(model, pretrained, quick_gelu)
    return build_method(method, backbone, classnames, config, template)


def load_model(checkpoint: str | os.PathLike, pretrained: str | None = None,
               classnames: list[str] | None = None) -> ClassifierModel:
    """Rebuild the model a checkpoint was saved from and load its adapters.

    `pretrained` overrides where the backbone weights come from (the checkpoint records the source it
    was trained with, which may be a path on another machine); `classnames` overrides the label space.
    """
    _, meta = read_checkpoint(checkpoint)
    source = pretrained if pretrained is not None else meta.get("pretrained")
    source = None if source in ("random", "") else source
    model = create_model(classnames or meta["classnames"], meta["method"], meta["model"], source,
                         meta.get("config") or None, meta.get("template", DEFAULT_TEMPLATE),
                         meta.get("quick_gelu"))
    load_adapters(model, checkpoint)
    return model
