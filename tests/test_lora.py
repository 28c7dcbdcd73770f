"""CLIP-LoRA's equations: zero updates == open_clip's attention; merged == unmerged; the update itself."""

from __future__ import annotations

import math

import torch

from dra.adapters.lora import LoRAAttention
from dra.config import LoRAConfig
from dra.methods import build_method

CLASSES = ["circle", "square", "triangle"]


def test_zero_updates_give_exactly_open_clips_attention(tiny_backbone):
    x_img = torch.randn(2, 5, tiny_backbone.image_width)
    x_txt = torch.randn(2, 77, tiny_backbone.text_width)
    mask = tiny_backbone.clip.attn_mask
    want_img = tiny_backbone.image_blocks[2](x_img)
    want_txt = tiny_backbone.text_blocks[2](x_txt, attn_mask=mask)
    model = build_method("clip_lora", tiny_backbone, CLASSES).eval()  # B = 0 at initialisation
    assert isinstance(tiny_backbone.image_blocks[2].attn, LoRAAttention)
    torch.testing.assert_close(tiny_backbone.image_blocks[2](x_img), want_img, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(tiny_backbone.text_blocks[2](x_txt, attn_mask=mask), want_txt, rtol=1e-6, atol=1e-6)
    model.unload()


def test_the_update_is_scaling_times_dropout_x_a_b(tiny_backbone):
    torch.manual_seed(0)
    build_method("clip_lora", tiny_backbone, CLASSES, LoRAConfig(dropout=0.0)).eval()
    attn = tiny_backbone.image_blocks[0].attn
    with torch.no_grad():
        for p in attn.lora.parameters():
            p.normal_()
    d, scaling = attn.base.embed_dim, 1.0 / math.sqrt(2)  # alpha / sqrt(r), CLIP-LoRA's loralib
    assert attn.scaling == scaling
    x = torch.randn(2, 5, d)
    w = attn.base.in_proj_weight.detach().clone()
    for i, n in enumerate("qkv"):
        w[i * d : (i + 1) * d] += scaling * getattr(attn.lora, f"{n}_B") @ getattr(attn.lora, f"{n}_A")
    ref = torch.nn.MultiheadAttention(d, attn.base.num_heads, batch_first=True)
    ref.load_state_dict({**attn.base.state_dict(), "in_proj_weight": w})
    torch.testing.assert_close(attn(x, x, x)[0], ref(x, x, x, need_weights=False)[0], rtol=1e-5, atol=1e-5)


def test_merge_gives_the_same_logits_and_unmerge_restores_the_weights(tiny_backbone):
    torch.manual_seed(0)
    model = build_method("clip_lora", tiny_backbone, CLASSES)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.05 * torch.randn_like(p))
    original = {k: v.clone() for k, v in tiny_backbone.state_dict().items() if "in_proj_weight" in k}
    images = torch.randn(3, 3, 32, 32)
    model.eval()
    want = model(images)
    model.merge()
    assert model.merged
    model.clear_text_cache()
    torch.testing.assert_close(model(images), want, rtol=1e-5, atol=1e-5)
    changed = {
        k for k, v in tiny_backbone.state_dict().items() if "in_proj_weight" in k and not torch.equal(v, original[k])
    }
    assert changed  # the updates are inside the frozen weights now
    model.train()  # training never runs on merged weights
    assert not model.merged
    for k, v in tiny_backbone.state_dict().items():
        if "in_proj_weight" in k:
            torch.testing.assert_close(v, original[k], rtol=0, atol=1e-6)
    model.merge()
    model.unload()  # unload unmerges first
    for k, v in tiny_backbone.state_dict().items():
        if "in_proj_weight" in k:  # keys lose the wrapper's `base.`
            torch.testing.assert_close(v, original[k.replace("attn.in_proj", "attn.base.in_proj")], rtol=0, atol=1e-6)


def test_dropout_only_in_training(tiny_backbone):
    torch.manual_seed(0)
    model = build_method("clip_lora", tiny_backbone, CLASSES, LoRAConfig(dropout=0.5))
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.5)
    images = torch.randn(2, 3, 32, 32)
    model.eval()
    assert torch.equal(model(images), model(images))
    model.train()
    assert not torch.equal(model(images), model(images))
