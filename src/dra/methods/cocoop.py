"""CoCoOp (Zhou et al., CVPR 2022): CoOp's context shifted per image by a small Meta-Net.

    pi(x)      = W_2 relu(W_1 x + b_1) + b_2           x: the normalised image feature (d), hidden d/16
    ctx_m(x)   = ctx_m + pi(x)                          for every context vector m
    logits_i   = 100 * x_i @ normalize(TextEncoder(prompts with ctx(x_i)))^T

The text encoder runs for every image over every class (B * C prompts per step): nothing is cached,
in training or at test. The published recipe trains with batch size 1.
"""

from __future__ import annotations

import torch
from torch import nn

from dra.backbones import CLIPBackbone
from dra.config import CoCoOpConfig
from dra.methods.base import DEFAULT_TEMPLATE
from dra.methods.coop import CoOp


class MetaNet(nn.Sequential):
    def __init__(self, image_dim: int, context_dim: int, reduction: int) -> None:
        hidden = image_dim // reduction
        super().__init__(nn.Linear(image_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, context_dim))


class CoCoOp(CoOp):
    def __init__(
        self,
        backbone: CLIPBackbone,
        classnames: list[str],
        config: CoCoOpConfig | None = None,
        template: str = DEFAULT_TEMPLATE,
    ) -> None:
        super().__init__(backbone, classnames, config, template)
        image_dim = backbone.clip.visual.output_dim
        self.meta_net = MetaNet(image_dim, backbone.text_width, self.config.meta_reduction).to(backbone.text_device)

    def text_features_for(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, D) normalised text features, each image's prompts shifted by its Meta-Net output."""
        tokens, embeddings = self.prompt_tokens()
        shift = self.meta_net(image.to(self.meta_net[0].weight.dtype))  # (B, D)
        ctx = self.context.ctx.unsqueeze(0) + shift.unsqueeze(1)  # (B, M, D)
        b, c = image.shape[0], embeddings.shape[0]
        prompts = self.context.insert(embeddings.repeat(b, 1, 1), ctx.repeat_interleave(c, dim=0))
        return self.backbone.encode_text_embeddings(prompts, tokens.repeat(b, 1)).view(b, c, -1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        image = self.image_features(images)
        text = self.text_features_for(image)
        return self.backbone.logit_scale * torch.einsum("bd,bcd->bc", image, text.to(image.dtype))

    def learned_modules(self) -> dict[str, nn.Module]:
        return {"context": self.context, "meta_net": self.meta_net}
