"""A frozen open_clip CLIP seen as two stacks of blocks, into which methods put their modules.

- `wrap_block(tower, index, wrapper)` puts a `ModuleWrapper` (e.g. a `ParallelBranchBlock`) in place of
  one residual block; `unwrap_block` restores it. The wrappers are ordinary submodules: `print()` and
  `state_dict()` show them.
- The text tower is split at the first adapted block: the blocks before it see the same prompts every
  step, so `text_prefix` runs once per class set and the rest runs per step (`encode_text_from`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import open_clip
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from dra.backbones.loading import BackboneError, create_clip, open_clip_quietly
from dra.backbones.wrapping import ModuleWrapper, WrapError, unwrap, wrap, wrappers

TOWERS = ("image", "text")


@dataclass(frozen=True)
class Preprocess:
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class CLIPBackbone(nn.Module):
    """The frozen CLIP. Its own `train()` never leaves eval mode: adapters are the only trainable part."""

    def __init__(self, clip: nn.Module, info: dict) -> None:
        super().__init__()
        if not hasattr(clip, "transformer") or not hasattr(clip.visual, "transformer"):
            raise BackboneError(
                f"{info.get('model')} is not a ViT CLIP with an open_clip text transformer; "
                "DRA needs ViT image and text towers (e.g. ViT-B-16, ViT-B-32, ViT-L-14)"
            )
        self.clip = clip
        self.info = dict(info)
        with open_clip_quietly():
            self.tokenizer = open_clip.get_tokenizer(info["model"])
        size = clip.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        self.preprocess = Preprocess(
            int(size),
            tuple(getattr(clip.visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN),
            tuple(getattr(clip.visual, "image_std", None) or open_clip.OPENAI_DATASET_STD),
        )

    @property
    def name(self) -> str:
        return self.info["model"]

    def train(self, mode: bool = True):
        """CLIP itself stays in eval mode; what methods put inside it (the wrappers) follows `mode`."""
        self.training = mode
        self.clip.eval()
        for wrapper in wrappers(self.clip):
            wrapper.train(mode)
        return self

    # -- the two stacks of blocks ------------------------------------------------------------------
    @property
    def image_blocks(self) -> nn.ModuleList:
        return self.clip.visual.transformer.resblocks

    @property
    def text_blocks(self) -> nn.ModuleList:
        return self.clip.transformer.resblocks

    def blocks(self, tower: str) -> nn.ModuleList:
        if tower not in TOWERS:
            raise ValueError(f"tower must be one of {TOWERS}, got {tower!r}")
        return self.image_blocks if tower == "image" else self.text_blocks

    def width(self, tower: str) -> int:
        return self.image_width if tower == "image" else self.text_width

    def wrap_block(self, tower: str, index: int, make: Callable[[nn.Module], ModuleWrapper]) -> ModuleWrapper:
        """Put `make(block)` in place of block `index` (0-based) of `tower`."""
        try:
            return wrap(self.blocks(tower), str(index), make)
        except WrapError as e:
            raise BackboneError(f"{tower} block {index + 1} of {self.name}: {e}") from e

    def unwrap_block(self, tower: str, index: int) -> nn.Module:
        return unwrap(self.blocks(tower), str(index))

    def wrap_attention(self, tower: str, index: int, make: Callable[[nn.Module], ModuleWrapper]) -> ModuleWrapper:
        """Put `make(attn)` in place of the attention (`nn.MultiheadAttention`) of block `index` (0-based)."""
        block = self.blocks(tower)[index]
        try:
            if isinstance(block, ModuleWrapper):
                raise WrapError(f"the block already carries a {type(block).__name__}")
            return wrap(block, "attn", make)
        except WrapError as e:
            raise BackboneError(f"{tower} block {index + 1} attention of {self.name}: {e}") from e

    def unwrap_attention(self, tower: str, index: int) -> nn.Module:
        return unwrap(self.blocks(tower)[index], "attn")

    @property
    def image_width(self) -> int:
        return self.clip.visual.transformer.width

    @property
    def text_width(self) -> int:
        return self.clip.transformer.width

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.exp()

    # -- image --------------------------------------------------------------------------------------
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.clip.encode_image(images), dim=-1)

    # -- text ---------------------------------------------------------------------------------------
    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        return self.tokenizer(prompts).to(self.clip.positional_embedding.device)

    def _run_blocks(self, x: torch.Tensor, blocks) -> torch.Tensor:
        batch_first = getattr(self.clip.transformer, "batch_first", True)
        if not batch_first:
            x = x.transpose(0, 1)
        checkpointed = getattr(self.clip.transformer, "grad_checkpointing", False) and torch.is_grad_enabled()
        for block in blocks:
            if checkpointed:  # as open_clip's Transformer does with set_grad_checkpointing(True)
                x = checkpoint(block, x, None, None, self.clip.attn_mask, use_reentrant=False)
            else:
                x = block(x, attn_mask=self.clip.attn_mask)
        return x if batch_first else x.transpose(0, 1)

    @torch.no_grad()
    def text_prefix(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """Hidden states entering text block `start` (0-based): embedding + the frozen blocks before it."""
        clip = self.clip
        dtype = clip.transformer.get_cast_dtype()
        x = clip.token_embedding(tokens).to(dtype) + clip.positional_embedding.to(dtype)
        return self._run_blocks(x, self.text_blocks[:start])

    def encode_text_from(self, hidden: torch.Tensor, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """Normalised text features from the hidden states entering block `start`."""
        clip = self.clip
        x = clip.ln_final(self._run_blocks(hidden, self.text_blocks[start:]))
        x = open_clip.transformer.text_global_pool(
            x, tokens, clip.text_pool_type, eos_token_id=getattr(clip, "text_eos_id", None))
        proj = clip.text_projection
        if proj is not None:
            x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
        return F.normalize(x, dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.encode_text_from(self.text_prefix(tokens, 0), tokens, 0)


def load_backbone(model_name: str = "ViT-B-16", pretrained: str | None = None,
                  quick_gelu: bool | None = None) -> CLIPBackbone:
    clip, info = create_clip(model_name, pretrained, quick_gelu)
    return CLIPBackbone(clip, info)
