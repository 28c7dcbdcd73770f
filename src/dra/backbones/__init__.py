"""open_clip wrapping: loading, where adapters attach, tokenizer, text-prefix caching."""
from dra.backbones.clip import CLIPBackbone, Preprocess, attach, load_backbone
from dra.backbones.loading import BackboneError, create_clip, list_models

__all__ = ["BackboneError", "CLIPBackbone", "Preprocess", "attach", "create_clip", "list_models", "load_backbone"]
