"""open_clip wrapping: loading, the blocks methods put modules into, tokenizer, text-prefix caching."""

from dra.backbones.blocks import ParallelBranchBlock
from dra.backbones.clip import TOWERS, CLIPBackbone, Preprocess, load_backbone
from dra.backbones.loading import BackboneError, create_clip
from dra.backbones.wrapping import ModuleWrapper, WrapError

__all__ = [
    "BackboneError",
    "CLIPBackbone",
    "ModuleWrapper",
    "ParallelBranchBlock",
    "Preprocess",
    "TOWERS",
    "WrapError",
    "create_clip",
    "load_backbone",
]
