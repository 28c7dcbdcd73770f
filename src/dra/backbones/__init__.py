"""open_clip wrapping: loading, where adapters attach, tokenizer, text-prefix caching."""
from dra.backbones.clip import CLIPBackbone, Preprocess, attach, load_backbone
from dra.backbones.loading import BackboneError, create_clip

__all__ = ["BackboneError", "CLIPBackbone", "Preprocess", "attach", "create_clip", "load_backbone"]
