"""TCP (Yao et al., CVPR 2024): class-aware prompts from a Textual Knowledge Embedding, plus KgCoOp's term.

    e_c   = normalize(CLIP_text(hand-written prompt of c))                  (frozen)
    p_c   = TKE(e_c) = W_2 QuickGELU(W_1 e_c + b_1) + b_2, reshaped (n, D)   d -> d/4 -> n*D
    text  : "X X X X {c}." (per dataset `tcp.prompt`, e.g. "X X X X {c}, a type of pet.") with tokens 1..n =
            learned ctx (random init); at the input of text block 8
            (0-based) tokens 1..n are replaced by p_c
    L     = CE + 8 * (1 - mean_c cos(t_c, e_c))

New classes get their own p_c from their own e_c: the TKE generalises, the prompts are rebuilt.
"""

from __future__ import annotations

import torch
from open_clip.transformer import QuickGELU
from torch import nn

from dra.backbones import CLIPBackbone
from dra.backbones.tokens import ReplaceTokens
from dra.config import TCPConfig
from dra.errors import SettingsError
from dra.methods.base import DEFAULT_TEMPLATE
from dra.methods.kgcoop import KgCoOp


class TextualKnowledgeEmbedding(nn.Sequential):
    def __init__(self, feature_dim: int, n_ctx: int, width: int, reduction: int) -> None:
        super().__init__(
            nn.Linear(feature_dim, feature_dim // reduction),
            QuickGELU(),
            nn.Linear(feature_dim // reduction, n_ctx * width),
        )
        self.n_ctx, self.width = n_ctx, width

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (C, d) -> (C, n, D)
        return super().forward(features).view(features.shape[0], self.n_ctx, self.width)


class TCP(KgCoOp):
    def __init__(
        self,
        backbone: CLIPBackbone,
        classnames: list[str],
        config: TCPConfig | None = None,
        template: str = DEFAULT_TEMPLATE,
    ) -> None:
        super().__init__(backbone, classnames, config, template)
        cfg = self.config
        if not 0 <= cfg.inject_layer < len(backbone.text_blocks):
            raise SettingsError(
                f"tcp.inject_layer {cfg.inject_layer} is not a text block of {backbone.name} "
                f"(0..{len(backbone.text_blocks) - 1})"
            )
        feature_dim = (
            backbone.clip.text_projection.shape[-1]
            if isinstance(backbone.clip.text_projection, torch.Tensor)
            else backbone.clip.text_projection.out_features
        )
        self.tke = TextualKnowledgeEmbedding(feature_dim, len(self.context), backbone.text_width, cfg.tke_reduction).to(
            backbone.text_device
        )
        backbone.wrap_block(
            "text", cfg.inject_layer, lambda base: ReplaceTokens(base, self.class_aware_prompts, start=1)
        )

    @property
    def prompts(self) -> list[str]:
        """The learned prompt's text (`tcp.prompt`, per dataset); the context replaces its first n_ctx tokens."""
        if not self.config.prompt:
            return super().prompts
        return [self.config.prompt.format(c.replace("_", " ")) for c in self.classnames]

    def class_aware_prompts(self) -> torch.Tensor:
        """(C, n, D): one prompt per class of the current label space."""
        return self.tke(self.hand_crafted_features().to(self.tke[0].weight.dtype))

    def unload(self) -> None:
        self.backbone.unwrap_block("text", self.config.inject_layer)

    def learned_modules(self) -> dict[str, nn.Module]:
        return {"context": self.context, "tke": self.tke}
