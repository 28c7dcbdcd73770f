"""MaPLe (Khattak et al., CVPR 2023): deep prompts in both towers, the image's made from the text's.

    layer 0:     text tokens 1..n = ctx (from "a photo"),      image += F_0(ctx) appended before ln_pre
    layer i<J:   text block i input tokens 1..n = P_i,          image block i input last n tokens = F_i(P_i)
    layers >= J: whatever the previous block produced at those positions

F_i: Linear(text width -> image width), one per layer, F_1..F_{J-1} initialised as copies of one layer (the
official `_get_clones`), F_0 on its own; P_i ~ N(0, 0.02^2). The text reads the full
"a photo of a {class}." with its first n tokens replaced. Loss: cross-entropy.
Official checkpoints (muzairkhattak/multimodal-prompt-learning): `maple_key` and `maple_config`, the class's `official_layout`.
"""

from __future__ import annotations

import copy
import re

import torch
from torch import nn

from dra.backbones import CLIPBackbone
from dra.backbones.tokens import AppendTokens, ReplaceTokens
from dra.backbones.wrapping import unwrap
from dra.config import MaPLeConfig
from dra.errors import SettingsError
from dra.methods.base import DEFAULT_TEMPLATE
from dra.methods.coop import CoOp
from dra.methods.official import FROZEN, OfficialLayout


class MultiModalPrompts(nn.Module):
    """P_1..P_{J-1} (text, (n, D_t) each) and F_0..F_{J-1} (Linear D_t -> D_v)."""

    def __init__(self, backbone: CLIPBackbone, config: MaPLeConfig) -> None:
        super().__init__()
        n, text, image = config.n_ctx, backbone.text_width, backbone.image_width
        device = backbone.text_device
        self.deep_text = nn.ParameterList(
            [nn.Parameter(torch.randn(n, text, device=device) * 0.02) for _ in range(config.depth - 1)]
        )
        # F_0 is its own layer (the official `proj`); F_1..F_{J-1} start as copies of one layer (`_get_clones`)
        first, shared = nn.Linear(text, image, device=device), nn.Linear(text, image, device=device)
        self.couplings = nn.ModuleList([first] + [copy.deepcopy(shared) for _ in range(config.depth - 1)])


def maple_key(key: str) -> str | None:
    """muzairkhattak/multimodal-prompt-learning: Dassl saves the whole CustomCLIP under
    "MultiModalPromptLearner"; the frozen encoders are skipped, the prompt learner maps to dra's MaPLe."""
    if key.startswith(("image_encoder.", "text_encoder.")) or key in ("logit_scale", "tokenized_prompts"):
        return FROZEN
    key = key.removeprefix("prompt_learner.")
    if key == "ctx":
        return "context.ctx"
    m = re.fullmatch(r"proj\.(weight|bias)", key)
    if m:
        return f"deep.couplings.0.{m[1]}"
    m = re.fullmatch(r"compound_prompts_text\.(\d+)", key)
    if m:
        return f"deep.deep_text.{m[1]}"
    m = re.fullmatch(r"compound_prompt_projections\.(\d+)\.(weight|bias)", key)
    if m:
        return f"deep.couplings.{int(m[1]) + 1}.{m[2]}"
    return None


def maple_config(tensors: dict[str, torch.Tensor]) -> dict:
    """MaPLe's prompt length and depth from the checkpoint; the prompt text is the published "a photo of a"."""
    depth = 1 + sum(1 for k in tensors if k.startswith("deep.deep_text."))
    return {"ctx_init": "a photo of a", "n_ctx": int(tensors["context.ctx"].shape[0]), "depth": depth}


class MaPLe(CoOp):
    official_layout = OfficialLayout("muzairkhattak/multimodal-prompt-learning", maple_key, maple_config)

    def __init__(
        self,
        backbone: CLIPBackbone,
        classnames: list[str],
        config: MaPLeConfig | None = None,
        template: str = DEFAULT_TEMPLATE,
    ) -> None:
        super().__init__(backbone, classnames, config, template)
        cfg = self.config
        if cfg.depth > min(len(backbone.text_blocks), len(backbone.image_blocks)):
            raise SettingsError(
                f"maple.depth {cfg.depth} exceeds the {len(backbone.text_blocks)} blocks of {backbone.name}"
            )
        self.prompts_deep = MultiModalPrompts(backbone, cfg)
        self._wrapped = [backbone.image_input_slot]
        backbone.wrap_image_input(lambda base: AppendTokens(base, self.image_prompt(0)))
        for i in range(1, cfg.depth):
            backbone.wrap_block("text", i, lambda base, i=i: ReplaceTokens(base, self.text_prompt(i), start=1))
            backbone.wrap_block("image", i, lambda base, i=i: ReplaceTokens(base, self.image_prompt(i), start=None))
            self._wrapped += [(backbone.text_blocks, str(i)), (backbone.image_blocks, str(i))]

    def _context_words(self) -> tuple[str, int | None]:
        return self.config.ctx_init, self.config.n_ctx

    def text_prompt(self, i: int):
        return lambda: self.prompts_deep.deep_text[i - 1]

    def image_prompt(self, i: int):
        """F_i(P_i), with P_0 the input context."""

        def tokens() -> torch.Tensor:
            p = self.context.ctx if i == 0 else self.prompts_deep.deep_text[i - 1]
            return self.prompts_deep.couplings[i](p)

        return tokens

    @property
    def text_trainable(self) -> bool:
        return True

    def unload(self) -> None:
        for parent, name in self._wrapped:
            unwrap(parent, name)
        self._wrapped = []

    def learned_modules(self) -> dict[str, nn.Module]:
        return {"context": self.context, "deep": self.prompts_deep}

    def parameter_counts(self) -> dict[str, int]:
        """text: the prompts P_0..P_{J-1}; image: the couplings F_0..F_{J-1} that make the image's prompts."""
        image = sum(p.numel() for p in self.prompts_deep.couplings.parameters())
        text = sum(p.numel() for p in self.trainable_parameters()) - image
        return {"trainable": text + image, "image": image, "text": text}
