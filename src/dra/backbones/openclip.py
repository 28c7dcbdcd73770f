"""An open_clip CLIP as a `CLIPBackbone` (`dra.backbones.base`): its two stacks of blocks, features.

- The text tower is split at the first adapted block: the blocks before it see the same prompts every
  step, so `text_prefix` runs once per class set and the rest runs per step (`encode_text_from`).
- `pooled_only=True` (methods, in training): the last block, when it is a wrapper with `rows`, computes
  only the token the tower pools (CLS / EOT; `ParallelBranchBlock.rows`), and a text tower whose last
  blocks are all token-wise runs only up to the last pooled token (causal mask: exact).
"""

from __future__ import annotations

import open_clip
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from dra.backbones.base import BackboneError, CLIPBackbone, Preprocess
from dra.backbones.loading import open_clip_quietly
from dra.backbones.wrapping import original


class OpenCLIPBackbone(CLIPBackbone):
    """An open_clip CLIP (its own ViT or a timm trunk, with an open_clip text transformer)."""

    def __init__(self, clip: nn.Module, info: dict) -> None:
        super().__init__()
        # open_clip's CLIP keeps the text tower's parts on the model; CustomTextCLIP (SigLIP, EVA) in `clip.text`
        text = getattr(clip, "text", clip)
        visual = getattr(clip, "visual", None)
        image_ok = visual is not None and (
            hasattr(visual, "transformer") or hasattr(getattr(visual, "trunk", None), "blocks")
        )
        if (
            not image_ok
            or not hasattr(getattr(text, "transformer", None), "resblocks")
            or getattr(text, "cls_emb", None) is not None
        ):
            raise BackboneError(
                f"{info.get('model')} is not a ViT CLIP with an open_clip text transformer; DRA needs ViT image "
                "towers (open_clip's own or timm's) and an open_clip text transformer (e.g. ViT-B-16, ViT-B-32, "
                "ViT-L-14, ViT-B-16-SigLIP, EVA02-B-16)"
            )
        self.clip = clip
        self.info = dict(info)
        try:
            with open_clip_quietly():
                self.tokenizer = open_clip.get_tokenizer(info["model"])
        except Exception as e:  # noqa: BLE001 - e.g. SigLIP's HF tokenizer offline, a missing package
            first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise BackboneError(
                f"the tokenizer of {info['model']} cannot be loaded ({type(e).__name__}: {first.strip()[:200]}); "
                "it comes from the Hugging Face cache: fetch it once on a connected machine"
            ) from None
        size = clip.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        self.preprocess = Preprocess(
            int(size),
            tuple(getattr(clip.visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN),
            tuple(getattr(clip.visual, "image_std", None) or open_clip.OPENAI_DATASET_STD),
        )

    @property
    def image_blocks(self) -> nn.ModuleList:
        visual = self.clip.visual
        if hasattr(visual, "transformer"):
            return visual.transformer.resblocks
        return visual.trunk.blocks  # a timm trunk inside open_clip (SigLIP, EVA02 configs)

    @property
    def text_blocks(self) -> nn.ModuleList:
        return self._text.transformer.resblocks

    @property
    def _text(self) -> nn.Module:
        """The text tower's parts: the model itself (open_clip CLIP) or `clip.text` (CustomTextCLIP)."""
        return getattr(self.clip, "text", self.clip)

    @property
    def text_device(self) -> torch.device:
        return self._text.positional_embedding.device

    @property
    def image_width(self) -> int:
        visual = self.clip.visual
        if hasattr(visual, "transformer"):
            return visual.transformer.width
        return int(visual.trunk.embed_dim)

    @property
    def text_width(self) -> int:
        return self._text.transformer.width

    @property
    def image_input_slot(self) -> tuple[nn.Module, str]:
        """`visual.ln_pre`: open_clip's ViT normalises class token + patches + positions there, just
        before the first block (MaPLe and MetaPrompt append their image prompts to its input)."""
        visual = self.clip.visual
        if not isinstance(getattr(visual, "ln_pre", None), nn.Module) or not hasattr(visual, "transformer"):
            return super().image_input_slot  # a timm trunk: no ln_pre (the error names the fix)
        return visual, "ln_pre"

    # -- image --------------------------------------------------------------------------------------
    def encode_image(self, images: torch.Tensor, pooled_only: bool = False) -> torch.Tensor:
        visual = self.clip.visual
        open_clip_vit = hasattr(visual, "transformer") and hasattr(visual, "_embeds")  # not a timm trunk
        last = self._row_block(self.image_blocks, visual.transformer) if pooled_only and open_clip_vit else None
        if (
            last is None
            or getattr(visual, "attn_pool", None) is not None
            or getattr(visual, "pool_type", None) != "tok"
            or getattr(visual, "output_tokens", False)
            or not hasattr(visual, "_embeds")
            or not hasattr(visual, "_pool")
        ):
            return F.normalize(self.clip.encode_image(images), dim=-1)
        # open_clip's VisionTransformer.forward, with the last block computing the CLS token alone:
        # ln_post and 'tok' pooling then see (B, 1, d)
        x = visual._embeds(images)
        rows = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
        x = self._run_blocks(x, self.image_blocks, None, rows, visual.transformer)
        pooled, _ = visual._pool(x)
        if visual.proj is not None:
            pooled = pooled @ visual.proj
        return F.normalize(pooled, dim=-1)

    # -- text ---------------------------------------------------------------------------------------
    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        return self.tokenizer(prompts).to(self.text_device)

    def _text_mask(self, tokens: torch.Tensor, x: torch.Tensor):
        """The attention mask of the text blocks: causal, plus padding where the tower masks padding (SigLIP)."""
        t = self._text
        if getattr(t, "use_pad_mask", False):
            add = t._build_additive_mask(tokens, tokens.shape[1], x.dtype)
            return add if t.attn_mask is None else t.attn_mask[: tokens.shape[1], : tokens.shape[1]].unsqueeze(0) + add
        return t.attn_mask

    def _run_blocks(
        self,
        x: torch.Tensor,
        blocks,
        mask: torch.Tensor | None = None,
        rows: torch.Tensor | None = None,
        transformer: nn.Module | None = None,
    ) -> torch.Tensor:
        """Run `blocks` with `mask` (default: the text transformer's settings); `rows`: the last block
        computes only those tokens (it must be a wrapper with `rows`), also in a checkpointed recomputation."""
        transformer = self._text.transformer if transformer is None else transformer
        batch_first = getattr(transformer, "batch_first", True)
        if not batch_first:
            x = x.transpose(0, 1)
        checkpointed = getattr(transformer, "grad_checkpointing", False) and torch.is_grad_enabled()
        for i, block in enumerate(blocks):
            if rows is not None and i == len(blocks) - 1:
                block = _RowsCall(block, rows)
            if checkpointed:  # as open_clip's Transformer does with set_grad_checkpointing(True)
                x = checkpoint(block, x, None, None, mask, use_reentrant=False)
            else:
                x = block(x, attn_mask=mask)
        return x if batch_first else x.transpose(0, 1)

    @staticmethod
    def _row_block(blocks, transformer) -> nn.Module | None:
        """The last block, when it can compute the pooled token alone (a wrapper with `rows`, batch-first)."""
        last = blocks[len(blocks) - 1] if len(blocks) else None
        if last is None or not hasattr(last, "rows") or not getattr(transformer, "batch_first", True):
            return None
        return last

    @torch.no_grad()
    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        """(C, L, D) frozen token embeddings, without the positional embedding (prompt methods replace some)."""
        t = self._text
        return t.token_embedding(tokens).to(t.transformer.get_cast_dtype())

    def encode_text_embeddings(self, embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Normalised text features of token embeddings in which a method put its own vectors.

        `tokens` are the ids the embeddings stand for: pooling takes the EOT position from them.
        """
        pos = self._text.positional_embedding[: tokens.shape[1]]
        return self.encode_text_from(embeddings + pos.to(embeddings.dtype), tokens, 0)

    @torch.no_grad()
    def text_prefix(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """Hidden states entering text block `start` (0-based): embedding + the frozen blocks before it."""
        t = self._text
        dtype = t.transformer.get_cast_dtype()
        x = t.token_embedding(tokens).to(dtype) + t.positional_embedding[: tokens.shape[1]].to(dtype)
        return self._run_blocks(x, self.text_blocks[:start], self._text_mask(tokens, x))

    def text_pool_rows(self, tokens: torch.Tensor) -> torch.Tensor | None:
        """Index of the token each prompt's features are pooled from (None: not one token per prompt)."""
        clip = self.clip
        pool = getattr(clip, "text_pool_type", None)
        if pool == "argmax":
            return tokens.argmax(dim=-1)
        if pool == "eos" and getattr(clip, "text_eos_id", None) is not None:
            return (tokens == clip.text_eos_id).int().argmax(dim=-1)
        if pool == "first":
            return torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)
        return None

    def _causal(self) -> bool:
        mask = self.clip.attn_mask
        if mask is None or mask.dim() != 2 or mask.shape[0] != mask.shape[1]:
            return False
        upper = torch.ones_like(mask, dtype=torch.bool).triu(1)
        return bool((mask[upper] == float("-inf")).all() and (mask[~upper] == 0).all())

    def encode_text_from(
        self, hidden: torch.Tensor, tokens: torch.Tensor, start: int, frozen: bool = False, pooled_only: bool = False
    ) -> torch.Tensor:
        """Normalised text features from the hidden states entering block `start`; `frozen` runs CLIP's
        own blocks, past any wrapper a method put in their place; `pooled_only` lets the last block
        compute the pooled token alone (open_clip's own text tower; exact)."""
        t = self._text
        blocks = [original(b) for b in self.text_blocks[start:]] if frozen else self.text_blocks[start:]
        mask = self._text_mask(tokens, hidden)
        rows = self.text_pool_rows(tokens) if pooled_only and not frozen and t is self.clip else None
        last = self._row_block(blocks, t.transformer) if rows is not None else None
        if (
            rows is not None
            and all(getattr(getattr(b, "branch", None), "tokenwise", False) for b in blocks)
            and len(blocks)
            and self._causal()
        ):
            # every block is token-wise outside its causal attention: tokens after the last pooled one
            # never reach a pooled token, so the sequence is cut there
            n = int(rows.max()) + 1
            hidden, mask = hidden[:, :n], t.attn_mask[:n, :n]
        if last is not None:
            x = t.ln_final(self._run_blocks(hidden, blocks, mask, rows))[:, 0]
        else:
            x = t.ln_final(self._run_blocks(hidden, blocks, mask))
            if t is self.clip:
                pool, eos = t.text_pool_type, getattr(t, "text_eos_id", None)
            else:
                pool, eos = t.pool_type, getattr(t, "eos_id", None)
            x = open_clip.transformer.text_global_pool(x, tokens, pool, eos_token_id=eos)
        proj = t.text_projection
        if proj is not None:
            x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
        return F.normalize(x, dim=-1)


class _RowsCall:
    """Calls a block with `rows` set for that call only (so that a checkpointed recomputation sets it too)."""

    def __init__(self, block: nn.Module, rows: torch.Tensor) -> None:
        self.block, self.rows = block, rows

    def __call__(self, *args, **kwargs):
        self.block.rows = self.rows
        try:
            return self.block(*args, **kwargs)
        finally:
            self.block.rows = None
