"""CLIP-Adapter's equation on the image feature."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from dra.methods import build_method


def test_image_feature_is_the_residual_blend(tiny_backbone):
    torch.manual_seed(0)
    model = build_method("clip_adapter", tiny_backbone, ["a", "b"]).eval()
    images = torch.randn(2, 3, 32, 32)
    f = tiny_backbone.clip.encode_image(images)
    w1, w2 = model.adapter.fc1.weight, model.adapter.fc2.weight
    a = F.relu(F.relu(f @ w1.t()) @ w2.t())
    want = F.normalize(0.2 * a + 0.8 * f, dim=-1)
    torch.testing.assert_close(model.image_features(images), want)
    assert model.adapter.fc1.bias is None and w1.shape == (16, 64)  # tiny: d = 64, reduction 4
    # the text side is CLIP's frozen prompt
    torch.testing.assert_close(
        model.text_features(), build_method("zeroshot", tiny_backbone, ["a", "b"]).text_features()
    )
