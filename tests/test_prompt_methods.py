"""CoOp, KgCoOp and CoCoOp against plain references of their equations, on the tiny CLIP."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from dra.config import CoCoOpConfig, CoOpConfig
from dra.methods import build_method

from conftest import meta_backbone

CLASSES = ["red circle", "blue_square", "green triangle"]


def reference_text(backbone, prompts: list[str], ctx: torch.Tensor) -> torch.Tensor:
    """open_clip's text encoder written out, with token embeddings 1..M replaced by `ctx` (C or 1, M, D)."""
    clip = backbone.clip
    tokens = backbone.tokenize(prompts)
    x = clip.token_embedding(tokens)
    m = ctx.shape[-2]
    x = torch.cat([x[:, :1], ctx.expand(len(prompts), -1, -1), x[:, 1 + m:]], dim=1)
    x = clip.transformer(x + clip.positional_embedding, attn_mask=clip.attn_mask)
    x = clip.ln_final(x)
    x = x[torch.arange(len(prompts)), tokens.argmax(-1)] @ clip.text_projection
    return F.normalize(x, dim=-1)


def test_coop_starts_as_zero_shot_clip_with_its_init_words(tiny_backbone):
    coop = build_method("coop", tiny_backbone, CLASSES).eval()
    assert coop.prompts == ["a photo of a red circle.", "a photo of a blue square.", "a photo of a green triangle."]
    zeroshot = build_method("zeroshot", tiny_backbone, CLASSES, template="a photo of a {}.").eval()
    torch.testing.assert_close(coop.text_features(), zeroshot.text_features(), rtol=1e-5, atol=1e-6)


def test_coop_text_features_follow_the_learned_context(tiny_backbone):
    coop = build_method("coop", tiny_backbone, CLASSES).train()
    with torch.no_grad():
        coop.context.ctx.add_(torch.randn_like(coop.context.ctx))
    want = reference_text(tiny_backbone, coop.prompts, coop.context.ctx.unsqueeze(0))
    torch.testing.assert_close(coop.compute_text_features(), want, rtol=1e-5, atol=1e-6)


def test_coop_random_init_uses_placeholder_words(tiny_backbone):
    torch.manual_seed(0)
    coop = build_method("coop", tiny_backbone, CLASSES, CoOpConfig(ctx_init="", n_ctx=16))
    assert coop.prompts[0] == "X X X X X X X X X X X X X X X X red circle." and len(coop.context) == 16
    assert 0.015 < coop.context.ctx.std().item() < 0.025  # N(0, 0.02^2)


def test_kgcoop_loss_is_ce_plus_8_times_one_minus_mean_cosine(tiny_backbone):
    model = build_method("kgcoop", tiny_backbone, CLASSES).train()
    with torch.no_grad():
        model.context.ctx.add_(0.5 * torch.randn_like(model.context.ctx))
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    logits = model(images)
    loss, parts = model.loss(logits, labels)
    learned = reference_text(tiny_backbone, model.prompts, model.context.ctx.unsqueeze(0))
    hand = F.normalize(tiny_backbone.clip.encode_text(tiny_backbone.tokenize(
        ["a photo of a red circle.", "a photo of a blue square.", "a photo of a green triangle."])), dim=-1)
    want = F.cross_entropy(logits, labels) + 8.0 * (1 - (learned * hand).sum(-1).mean())
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-6)
    assert parts["kg"] > 0
    loss.backward()
    assert model.context.ctx.grad is not None and model.context.ctx.grad.abs().sum() > 0


def test_cocoop_shifts_each_images_context_by_its_meta_net_output(tiny_backbone):
    torch.manual_seed(0)
    model = build_method("cocoop", tiny_backbone, CLASSES, CoCoOpConfig()).eval()
    assert [m.weight.shape for m in model.meta_net if hasattr(m, "weight")] == [(4, 64), (48, 4)]  # 64 -> 64/16
    images = torch.randn(3, 3, 32, 32)
    logits = model(images)
    for i in range(3):
        x = F.normalize(tiny_backbone.clip.encode_image(images[i:i + 1]), dim=-1)
        ctx = model.context.ctx + model.meta_net(x)
        text = reference_text(tiny_backbone, model.prompts, ctx.unsqueeze(0))
        want = tiny_backbone.clip.logit_scale.exp() * x @ text.t()
        torch.testing.assert_close(logits[i:i + 1], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method, count", [("coop", 2_048), ("kgcoop", 2_048), ("cocoop", 35_360)])
def test_exact_counts_on_vit_b16(method, count):
    """ViT-B/16: context 4 x 512 = 2,048; Meta-Net (512*32 + 32) + (32*512 + 512) = 33,312 more."""
    model = build_method(method, meta_backbone("ViT-B-16"), ["a"])
    assert model.parameter_counts()["trainable"] == count
    assert sum(t.numel() for t in model.adapter_state_dict().values()) == count


@pytest.mark.parametrize("method, config", [("coop", None), ("kgcoop", None),
                                            ("cocoop", CoCoOpConfig(meta_reduction=2))])
def test_gradients_reach_exactly_the_learned_tensors(tiny_backbone, method, config):
    # (the random tiny CLIP gives nearly equal image features: with CoCoOp's 4 hidden units at 64 / 16
    # all ReLUs can be off for every image; 32 hidden units keep some on)
    model = build_method(method, tiny_backbone, CLASSES, config).train()
    loss, _ = model.loss(model(torch.randn(2, 3, 32, 32)), torch.tensor([0, 2]))
    loss.backward()
    learned = {id(p) for m in model.learned_modules().values() for p in m.parameters()}
    for p in model.parameters():
        assert (p.grad is not None and p.grad.abs().sum() > 0) == (id(p) in learned)
