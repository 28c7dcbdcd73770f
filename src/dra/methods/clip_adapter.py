"""CLIP-Adapter: a residual MLP on the pooled image feature (the released code's image adapter).

    A(f) = relu(W2 relu(W1 f))            W1: d -> d / reduction, W2: d / reduction -> d, no biases
    f'   = alpha * A(f) + (1 - alpha) * f, then L2-normalised           (alpha = 0.2)

`f` is CLIP's image embedding before normalisation; the text side is the frozen prompt (cached). No
block is wrapped: the adapter is a module of the model, `unload()` has nothing to take out of CLIP.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dra.config import CLIPAdapterConfig
from dra.errors import SettingsError
from dra.methods.base import DEFAULT_TEMPLATE, ClassifierModel


class FeatureAdapter(nn.Module):
    def __init__(self, dim: int, reduction: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, dim // reduction, bias=False)
        self.fc2 = nn.Linear(dim // reduction, dim, bias=False)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc2(F.relu(self.fc1(f))))


class CLIPAdapter(ClassifierModel):
    def __init__(
        self, backbone, classnames, config: CLIPAdapterConfig | None = None, template: str = DEFAULT_TEMPLATE
    ) -> None:
        super().__init__(backbone, classnames, template)
        self.config = config = config or CLIPAdapterConfig()
        dim = backbone.clip.visual.output_dim
        if dim // config.reduction < 1:
            raise SettingsError(f"clip_adapter reduction {config.reduction} leaves no hidden unit of {dim}")
        self.adapter = FeatureAdapter(dim, config.reduction)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        f = self.backbone.clip.encode_image(images)
        a = self.config.alpha
        return F.normalize(a * self.adapter(f) + (1 - a) * f, dim=-1)

    def learned_modules(self) -> dict[str, nn.Module]:
        return {"adapter": self.adapter}

    def parameter_counts(self) -> dict[str, int]:
        n = sum(p.numel() for p in self.adapter.parameters())
        return {"trainable": n, "image": n, "text": 0}
