"""CoOp, KgCoOp and CoCoOp against plain references of their equations, on the tiny CLIP."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from conftest import meta_backbone
from dra.backbones.wrapping import original
from dra.config import CoCoOpConfig, CoOpConfig
from dra.methods import build_method

CLASSES = ["red circle", "blue_square", "green triangle"]


def reference_text(backbone, prompts: list[str], ctx: torch.Tensor) -> torch.Tensor:
    """open_clip's text encoder written out, with token embeddings 1..M replaced by `ctx` (C or 1, M, D)."""
    clip = backbone.clip
    tokens = backbone.tokenize(prompts)
    x = clip.token_embedding(tokens)
    m = ctx.shape[-2]
    x = torch.cat([x[:, :1], ctx.expand(len(prompts), -1, -1), x[:, 1 + m :]], dim=1)
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
    hand = F.normalize(
        tiny_backbone.clip.encode_text(
            tiny_backbone.tokenize(
                ["a photo of a red circle.", "a photo of a blue square.", "a photo of a green triangle."]
            )
        ),
        dim=-1,
    )
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
        x = F.normalize(tiny_backbone.clip.encode_image(images[i : i + 1]), dim=-1)
        ctx = model.context.ctx + model.meta_net(x)
        text = reference_text(tiny_backbone, model.prompts, ctx.unsqueeze(0))
        want = tiny_backbone.clip.logit_scale.exp() * x @ text.t()
        torch.testing.assert_close(logits[i : i + 1], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method, count", [("coop", 2_048), ("kgcoop", 2_048), ("cocoop", 35_360)])
def test_exact_counts_on_vit_b16(method, count):
    """ViT-B/16: context 4 x 512 = 2,048; Meta-Net (512*32 + 32) + (32*512 + 512) = 33,312 more."""
    model = build_method(method, meta_backbone("ViT-B-16"), ["a"])
    assert model.parameter_counts()["trainable"] == count
    assert sum(t.numel() for t in model.adapter_state_dict().values()) == count


@pytest.mark.parametrize(
    "method, config",
    [
        ("coop", None),
        ("kgcoop", None),
        ("maple", {"depth": 4}),
        ("tcp", {"inject_layer": 3}),
        ("cocoop", CoCoOpConfig(meta_reduction=2)),
    ],
)
def test_gradients_reach_exactly_the_learned_tensors(tiny_backbone, method, config):
    # (the random tiny CLIP gives nearly equal image features: with CoCoOp's 4 hidden units at 64 / 16
    # all ReLUs can be off for every image; 32 hidden units keep some on)
    model = build_method(method, tiny_backbone, CLASSES, config).train()
    loss, _ = model.loss(model(torch.randn(2, 3, 32, 32)), torch.tensor([0, 2]))
    loss.backward()
    learned = {id(p) for m in model.learned_modules().values() for p in m.parameters()}
    for p in model.parameters():
        assert (p.grad is not None and p.grad.abs().sum() > 0) == (id(p) in learned)


def _image_reference(backbone, images, append, replace_last):
    """open_clip's image tower written out: `append` (n, D) joins before ln_pre; block i's input has its
    last n tokens replaced by `replace_last[i]` where given."""
    v = backbone.clip.visual
    x = v.conv1(images).flatten(2).transpose(1, 2)
    x = torch.cat([v.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + v.positional_embedding
    x = original(v.ln_pre)(torch.cat([x, append.expand(x.shape[0], -1, -1)], dim=1))
    for i, block in enumerate(backbone.image_blocks):
        block = getattr(block, "base", block)
        if i in replace_last:
            p = replace_last[i]
            x = torch.cat([x[:, : -p.shape[0]], p.expand(x.shape[0], -1, -1)], dim=1)
        x = block(x)
    return F.normalize(v.ln_post(x[:, 0]) @ v.proj, dim=-1)


def _text_reference(backbone, prompts, ctx, replace_at):
    """The text tower written out: tokens 1..n = ctx; at block i's input tokens 1..n = replace_at[i]
    ((n, D) shared or (C, n, D) per class)."""
    clip = backbone.clip
    tokens = backbone.tokenize(prompts)
    x = clip.token_embedding(tokens)
    n = ctx.shape[0]
    x = torch.cat([x[:, :1], ctx.expand(len(prompts), -1, -1), x[:, 1 + n :]], dim=1) + clip.positional_embedding
    for i, block in enumerate(backbone.text_blocks):
        block = getattr(block, "base", block)
        if i in replace_at:
            p = replace_at[i].expand(len(prompts), -1, -1)
            x = torch.cat([x[:, :1], p, x[:, 1 + p.shape[1] :]], dim=1)
        x = block(x, attn_mask=clip.attn_mask)
    x = clip.ln_final(x)
    return F.normalize(x[torch.arange(len(prompts)), tokens.argmax(-1)] @ clip.text_projection, dim=-1)


def test_maple_deep_prompts_enter_both_towers_as_written(tiny_backbone):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="depth 9 exceeds the 6 blocks"):  # the default, on the tiny CLIP
        build_method("maple", tiny_backbone, CLASSES)
    model = build_method("maple", tiny_backbone, CLASSES, {"depth": 5})
    assert model.prompts[0] == "a photo of a red circle." and len(model.context) == 2
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.1 * torch.randn_like(p))
    deep, couple = model.prompts_deep.deep_text, model.prompts_deep.couplings
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        image = _image_reference(
            tiny_backbone, images, couple[0](model.context.ctx), {i: couple[i](deep[i - 1]) for i in range(1, 5)}
        )
        text = _text_reference(tiny_backbone, model.prompts, model.context.ctx, {i: deep[i - 1] for i in range(1, 5)})
        want = tiny_backbone.clip.logit_scale.exp() * image @ text.t()
        torch.testing.assert_close(model.eval()(images), want, rtol=1e-4, atol=1e-4)
    model.unload()
    assert not any(type(b).__name__ == "ReplaceTokens" for b in tiny_backbone.text_blocks)
    assert type(tiny_backbone.clip.visual.ln_pre).__name__ == "LayerNorm"


def test_tcp_injects_class_aware_prompts_from_the_tke(tiny_backbone):
    hand = F.normalize(
        tiny_backbone.clip.encode_text(
            tiny_backbone.tokenize(  # CLIP before TCP enters it
                [f"a photo of a {c.replace('_', ' ')}." for c in CLASSES]
            )
        ),
        dim=-1,
    )
    torch.manual_seed(0)
    model = build_method("tcp", tiny_backbone, CLASSES, {"inject_layer": 4}).train()
    assert model.prompts[0] == "X X X X red circle."
    tke = model.tke
    class_aware = (tke[2](tke[1](tke[0](hand)))).view(3, 4, -1)
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([1, 2])
    logits = model(images)
    loss, parts = model.loss(logits, labels)
    text = _text_reference(tiny_backbone, model.prompts, model.context.ctx, {4: class_aware})
    image = F.normalize(tiny_backbone.clip.encode_image(images), dim=-1)
    torch.testing.assert_close(logits, tiny_backbone.clip.logit_scale.exp() * image @ text.t(), rtol=1e-4, atol=1e-4)
    want = F.cross_entropy(logits, labels) + 8.0 * (1 - (text * hand).sum(-1).mean())
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in model.tke.parameters()) and model.context.ctx.grad is not None


@pytest.mark.parametrize("method, count", [("maple", 3_555_072), ("tcp", 331_904)])
def test_exact_deep_prompt_counts_on_vit_b16(method, count):
    """MaPLe: ctx 2x512 + F_0 (512*768 + 768) + 8 x (2x512 + 512*768 + 768) = 3,555,072.
    TCP: ctx 4x512 + TKE (512*128 + 128) + (128*2048 + 2048) = 331,904."""
    model = build_method(method, meta_backbone("ViT-B-16"), ["a"])
    assert model.parameter_counts()["trainable"] == count


def test_official_coop_and_maple_checkpoints_convert_to_the_same_model(tiny_backbone, tmp_path):
    """A Dassl checkpoint written with the official key names (CoOp: the prompt learner alone; MaPLe: the
    whole CustomCLIP, frozen encoders included) loads into dra's model with identical logits."""
    from dra.checkpoints.convert import convert, read_dassl

    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    for method, config in (("coop", None), ("maple", {"depth": 3})):
        model = build_method(method, tiny_backbone, CLASSES, config)
        with torch.no_grad():
            for p in model.trainable_parameters():
                p.add_(0.1 * torch.randn_like(p))
        want = model.eval()(images)
        ctx = model.context.ctx.detach()
        if method == "coop":
            official = {"ctx": ctx, "token_prefix": torch.zeros(3, 1, 48), "token_suffix": torch.zeros(3, 72, 48)}
        else:
            deep = model.prompts_deep
            official = {
                "prompt_learner.ctx": ctx,
                "prompt_learner.token_prefix": torch.zeros(3, 1, 48),
                "prompt_learner.proj.weight": deep.couplings[0].weight.detach(),
                "prompt_learner.proj.bias": deep.couplings[0].bias.detach(),
                "image_encoder.conv1.weight": torch.zeros(64, 3, 16, 16),
                "logit_scale": torch.ones(()),
            }
            for i, p in enumerate(deep.deep_text):
                official[f"prompt_learner.compound_prompts_text.{i}"] = p.detach()
                official[f"prompt_learner.compound_prompt_projections.{i}.weight"] = deep.couplings[
                    i + 1
                ].weight.detach()
                official[f"prompt_learner.compound_prompt_projections.{i}.bias"] = deep.couplings[i + 1].bias.detach()
        torch.save({"state_dict": official, "epoch": 5}, tmp_path / f"{method}.pth.tar-5")
        tensors = convert(method, read_dassl(tmp_path / f"{method}.pth.tar-5")["state_dict"])
        model.unload()
        fresh = build_method(method, tiny_backbone, CLASSES, config)
        fresh.load_adapter_state_dict(tensors)
        torch.testing.assert_close(fresh.eval()(images), want, rtol=0, atol=0)
        fresh.unload()


def test_maple_deep_couplings_start_as_copies_of_one_layer(tiny_backbone):
    model = build_method("maple", tiny_backbone, ["a", "b"], {"depth": 4})
    first, *deep = model.prompts_deep.couplings
    for layer in deep[1:]:
        torch.testing.assert_close(layer.weight, deep[0].weight, rtol=0, atol=0)
        torch.testing.assert_close(layer.bias, deep[0].bias, rtol=0, atol=0)
        assert layer.weight is not deep[0].weight  # copies, trained apart
    assert not torch.equal(first.weight, deep[0].weight)  # F_0 is its own layer (the official `proj`)


def test_tcp_learned_prompt_carries_the_dataset_suffix(tiny_backbone):
    model = build_method(
        "tcp", tiny_backbone, ["abyssinian"], {"inject_layer": 3, "prompt": "X X X X {}, a type of pet."}
    )
    assert model.prompts == ["X X X X abyssinian, a type of pet."]
    model.unload()
    plain = build_method("tcp", tiny_backbone, ["abyssinian"], {"inject_layer": 3})
    assert plain.prompts == ["X X X X abyssinian."]
