"""A frozen open_clip CLIP seen as two stacks of blocks, with the hooks that adapters need.

- `attach(block, branch, placement)`: adds a branch to one residual block with forward hooks, so that
  open_clip's source is neither edited nor copied. The hook on `ln_1` hands LN1(x) to the branch;
  "attention" placement adds `s * A(LN1(x))` to the attention output (x + Attn + s*A, then the MLP),
  "block" placement adds it to the block's output (MMA).
- The text tower is split at the first adapted block: the blocks before it see the same prompts every
  step, so `text_prefix` runs once per class set and the rest runs per step (`encode_text_from`).
"""
from __future__ import annotations

from dataclasses import dataclass

import open_clip
import torch
from torch import nn
from torch.nn import functional as F

from dra.backbones.loading import BackboneError, create_clip


def attach(block: nn.Module, branch: nn.Module, placement: str) -> list:
    """Hook `branch` into an open_clip residual block; returns the hook handles."""
    if not hasattr(block, "ln_1") or not hasattr(block, "ls_1"):
        raise BackboneError(f"{type(block).__name__} is not an open_clip residual attention block")
    if getattr(block, "_dra_branch", None) is not None:
        raise BackboneError(
            "this CLIP block already carries an adapter: build each method on a fresh backbone "
            "(load_backbone) or call remove_hooks() on the previous method first"
        )
    slot: dict[str, torch.Tensor] = {}

    def keep_ln1(module, args, output):
        slot["y"] = output

    def add_branch(module, args, output):
        return output + branch(slot.pop("y"))

    target = block.ls_1 if placement == "attention" else block
    handles = [block.ln_1.register_forward_hook(keep_ln1), target.register_forward_hook(add_branch)]
    object.__setattr__(block, "_dra_branch", branch)  # a plain attribute, not a registered submodule
    return handles


def detach(block: nn.Module, handles: list) -> None:
    for h in handles:
        h.remove()
    object.__setattr__(block, "_dra_branch", None)


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
        self.tokenizer = open_clip.get_tokenizer(info["model"])
        size = clip.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        self.preprocess = Preprocess(
            int(size),
            tuple(getattr(clip.visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN),
            tuple(getattr(clip.visual, "image_std", None) or open_clip.OPENAI_DATASET_STD),
        )

    def transforms(self):
        """(train, test) transforms of the benchmark at this model's input size and normalisation."""
        from dra.data import build_transforms

        p = self.preprocess
        return (build_transforms(True, p.image_size, p.mean, p.std), build_transforms(False, p.image_size, p.mean, p.std))

    @property
    def name(self) -> str:
        return self.info["model"]

    def train(self, mode: bool = True):
        super().train(mode)
        self.clip.eval()
        return self

    # -- the two stacks of blocks ------------------------------------------------------------------
    @property
    def image_blocks(self) -> nn.ModuleList:
        return self.clip.visual.transformer.resblocks

    @property
    def text_blocks(self) -> nn.ModuleList:
        return self.clip.transformer.resblocks

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
        for block in blocks:
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
