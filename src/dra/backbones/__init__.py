"""Frozen CLIP backbones: the interface methods use (`base`), open_clip's and Hugging Face's
implementations (`openclip`, `hf`), the name -> loader factory (`factory`), weight loading
(`loading`, `weights`: packaged weights), the blocks methods put modules into, and cached frozen image
features (`features`)."""

from dra.backbones.base import TOWERS, BackboneError, CLIPBackbone, Preprocess, WeightsUnavailableError
from dra.backbones.blocks import ParallelBranchBlock
from dra.backbones.factory import load_backbone
from dra.backbones.loading import create_clip
from dra.backbones.openclip import OpenCLIPBackbone
from dra.backbones.wrapping import ModuleWrapper, WrapError

__all__ = [
    "BackboneError",
    "CLIPBackbone",
    "ModuleWrapper",
    "OpenCLIPBackbone",
    "ParallelBranchBlock",
    "Preprocess",
    "TOWERS",
    "WeightsUnavailableError",
    "WrapError",
    "create_clip",
    "load_backbone",
]
