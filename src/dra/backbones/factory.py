"""`load_backbone`: a model name to the loader that builds it, as open_clip's `factory.py` maps a
`hf-hub:` prefix to its loader. A name with a prefix of `LOADERS` goes to that loader (`hf:<repo or
folder>`: Hugging Face transformers); any other name is an open_clip model."""

from __future__ import annotations

from typing import Callable

from dra.backbones.base import CLIPBackbone
from dra.backbones.hf import HF_PREFIX, load_hf_backbone
from dra.backbones.loading import create_clip
from dra.backbones.openclip import OpenCLIPBackbone


def load_open_clip_backbone(
    model_name: str = "ViT-B-16", pretrained: str | None = None, quick_gelu: bool | None = None
) -> OpenCLIPBackbone:
    clip, info = create_clip(model_name, pretrained, quick_gelu)
    return OpenCLIPBackbone(clip, info)


def _hf(model_name: str, pretrained: str | None, quick_gelu: bool | None) -> CLIPBackbone:
    return load_hf_backbone(model_name, pretrained)  # quick_gelu: an open_clip switch (HF configs say their act)


LOADERS: dict[str, Callable[[str, str | None, bool | None], CLIPBackbone]] = {HF_PREFIX: _hf}
"""Name prefix -> loader(model_name, pretrained, quick_gelu); without a known prefix: open_clip."""


def load_backbone(
    model_name: str = "ViT-B-16", pretrained: str | None = None, quick_gelu: bool | None = None
) -> CLIPBackbone:
    """The frozen CLIP `model_name` with `pretrained` weights (None: random, seed 0; see `loading.py`)."""
    for prefix, loader in LOADERS.items():
        if model_name.startswith(prefix):
            return loader(model_name, pretrained, quick_gelu)
    return load_open_clip_backbone(model_name, pretrained, quick_gelu)
