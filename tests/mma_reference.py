"""MMA's forward written literally after its official code (ZjjConan/Multi-Modal-Adapter @ 547ee345,
clip/model.py `ModifiedResidualAttentionBlock.forward`, `VisionTransformer.forward`, trainers/mmadapter.py
`TextEncoder`, `AdapterLearner._build_adapter`, `CustomCLIP.forward`), on open_clip's frozen modules.

Not copied: re-typed from reading it, with the same structure: the adapters are the official
`nn.Sequential(OrderedDict(down=Sequential(Linear, ReLU), up=Linear))` per layer index 0..L (None where
absent), the shared adapter `Sequential(Linear, ReLU)` (its d_model equals ADAPTER_DIM), so that the
official `adapter_learner` state_dict keys (`text_adapter.5.down.0.weight`, `shared_adapter.5.0.bias`,
...) address them. The official code runs the blocks sequence-first (LND); open_clip's blocks are
batch-first, which changes no value.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F


class GradientScale(torch.autograd.Function):  # clip/gsl.py
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def gsl(x, scale):
    return GradientScale.apply(x, scale)


class OfficialAdapterLearner(nn.Module):
    """The trainable part of the official model (what Dassl saves as `adapter_learner`)."""

    def __init__(self, text_width, image_width, n_layers, start, end, dim=32, scale=0.001):
        super().__init__()

        def build(d_model):
            adapter = [None] * (n_layers + 1)
            for i in range(start, end + 1):
                if dim == d_model:
                    adapter[i] = nn.Sequential(nn.Linear(d_model, dim), nn.ReLU())
                else:
                    adapter[i] = nn.Sequential(
                        OrderedDict(
                            [
                                ("down", nn.Sequential(nn.Linear(d_model, dim), nn.ReLU())),
                                ("up", nn.Linear(dim, d_model)),
                            ]
                        )
                    )
            adapter = nn.ModuleList(adapter)
            for m in adapter.modules():
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.constant_(m.bias, 0)
            return adapter

        self.text_adapter = build(text_width)
        self.visual_adapter = build(image_width)
        self.shared_adapter = build(dim)
        self.adapter_scale = scale


def official_block(block, x, seq_adapter, shared_adapter, scale, attn_mask=None):
    """ModifiedResidualAttentionBlock.forward with an adapter function (open_clip's block modules)."""
    block = getattr(block, "base", block)  # open_clip's own block (dra's wrapper, if any, is bypassed)
    if seq_adapter is not None:
        y = gsl(x, scale)
        y = block.ln_1(y)
        y = seq_adapter.down(y)
        if shared_adapter is not None:
            y = shared_adapter(y)
        y = seq_adapter.up(y) * scale
        y = gsl(y, 1.0 / scale)
    else:
        y = 0
    mask = attn_mask.to(x.dtype) if attn_mask is not None else None
    x = x + block.attn(block.ln_1(x), block.ln_1(x), block.ln_1(x), need_weights=False, attn_mask=mask)[0]
    x = x + block.mlp(block.ln_2(x)) + y
    return x


def official_logits(clip, learner: OfficialAdapterLearner, tokenized: torch.Tensor, images: torch.Tensor):
    """CustomCLIP.forward: text features with adapters, image features with adapters, logits."""
    s = learner.adapter_scale
    # TextEncoder.forward(token_embedding, tokenized_prompts, text_adapter_func)
    x = clip.token_embedding(tokenized) + clip.positional_embedding
    for i, block in enumerate(clip.transformer.resblocks):
        index = i + 1  # layer_index = index + 1
        x = official_block(block, x, learner.text_adapter[index], learner.shared_adapter[index], s, clip.attn_mask)
    x = clip.ln_final(x)
    text = x[torch.arange(x.shape[0]), tokenized.argmax(dim=-1)] @ clip.text_projection
    # VisionTransformer.forward([image, visual_adapter_func])
    v = clip.visual
    x = v.conv1(images)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    x = torch.cat([v.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype), x], dim=1)
    x = x + v.positional_embedding.to(x.dtype)
    x = v.ln_pre(x)  # adapter index 0 is None for ADAPTER_START >= 1
    for i, block in enumerate(v.transformer.resblocks):
        index = i + 1
        x = official_block(block, x, learner.visual_adapter[index], learner.shared_adapter[index], s)
    image = v.ln_post(x[:, 0, :]) @ v.proj
    text, image = F.normalize(text, dim=-1), F.normalize(image, dim=-1)
    return clip.logit_scale.exp() * image @ text.t()
