"""DRA inside CLIP: placement, frozen backbone, caching, parameter counts, gradients, a falling loss."""
from __future__ import annotations

import math

import pytest
import torch

from dra.backbones import BackboneError, load_backbone
from dra.config import DRAConfig
from dra.methods import build_method

from conftest import TINY


def adapter_params(d: int, r: int, square_layers: int) -> int:
    """down (d->r) + `square_layers` r->r Linears + up (r->d), all with bias."""
    return (d * r + r) + square_layers * (r * r + r) + (r * d + d)


@pytest.fixture(scope="module")
def vit_b16():
    return load_backbone("ViT-B-16")


@pytest.mark.parametrize("changes, method, image_blocks, text_blocks, squares", [
    ({}, "dra", 8, 8, 3),
    ({"branches": "image"}, "dra", 8, 0, 3),
    ({"branches": "text"}, "dra", 0, 8, 3),
    ({"channel_response": False}, "dra", 8, 8, 2),
    ({"regularization": False, "learnable_scores": False}, "dra", 8, 8, 3),
    ({"start_layer": 7}, "dra", 6, 6, 3),
    ({"num_groups": 2, "rank_ratios": (1.0, 0.5)}, "dra", 8, 8, 3),
    ({}, "adapter", 8, 8, 1),
])
def test_exact_parameter_counts_vit_b16(vit_b16, changes, method, image_blocks, text_blocks, squares):
    model = build_method(method, vit_b16, ["a"], DRAConfig(**changes))
    try:
        counts = model.parameter_counts()
        assert counts["image"] == image_blocks * adapter_params(768, 32, squares)
        assert counts["text"] == text_blocks * adapter_params(512, 32, squares)
        assert counts["trainable"] == counts["image"] + counts["text"]
        assert counts["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    finally:
        model.unload()


def test_paper_count_is_716800(vit_b16):
    model = build_method("dra", vit_b16, ["a"])
    assert model.parameter_counts() == {"trainable": 716_800, "image": 424_960, "text": 291_840}
    model.unload()


@pytest.mark.parametrize("rank", [8, 16, 64])
def test_rank_sweep_counts(vit_b16, rank):
    model = build_method("dra", vit_b16, ["a"], DRAConfig(rank=rank))
    assert model.parameter_counts()["trainable"] == 8 * (adapter_params(768, rank, 3) + adapter_params(512, rank, 3))
    model.unload()


@pytest.mark.parametrize("name, image_blocks, widths", [("ViT-B-32", 8, (768, 512)), ("ViT-L-14", 20, (1024, 768))])
def test_other_vit_configs(name, image_blocks, widths):
    model = build_method("dra", load_backbone(name), ["a"])
    counts = model.parameter_counts()
    assert counts["image"] == image_blocks * adapter_params(widths[0], 32, 3)
    assert counts["text"] == 8 * adapter_params(widths[1], 32, 3)


def test_start_layer_past_the_encoder_is_a_clear_error(tiny_backbone):
    with pytest.raises(BackboneError, match="start_layer 9 is past the last of the 6"):
        build_method("dra", tiny_backbone, ["a"], DRAConfig(start_layer=9))


def test_attention_placement_adds_s_times_adapter_of_ln1(tiny_backbone):
    model = build_method("dra", tiny_backbone, ["a"], DRAConfig(start_layer=6)).eval()
    wrapped = tiny_backbone.image_blocks[5]
    block, adapter = wrapped.base, model.adapters["image"]["6"].adapter
    x = torch.randn(2, 5, tiny_backbone.image_width)
    y = block.ln_1(x)
    h = x + block.attention(y) + 0.001 * adapter(y)
    want = h + block.mlp(block.ln_2(h))
    torch.testing.assert_close(wrapped(x), want)


def test_block_placement_adds_the_branch_after_the_mlp(tiny_backbone):
    model = build_method("adapter", tiny_backbone, ["a"], DRAConfig(start_layer=6, placement="block")).eval()
    wrapped = tiny_backbone.image_blocks[5]
    block, adapter = wrapped.base, model.adapters["image"]["6"].adapter
    x = torch.randn(2, 5, tiny_backbone.image_width)
    h = x + block.attention(block.ln_1(x))
    want = h + block.mlp(block.ln_2(h)) + 0.001 * adapter(block.ln_1(x))
    torch.testing.assert_close(wrapped(x), want)


def test_zero_shot_text_path_equals_open_clip(tiny_backbone):
    model = build_method("zeroshot", tiny_backbone, ["cat", "dog"]).eval()
    tokens = tiny_backbone.tokenize(model.prompts)
    want = torch.nn.functional.normalize(tiny_backbone.clip.encode_text(tokens), dim=-1)
    torch.testing.assert_close(model.text_features(), want)
    assert model.prompts == ["a photo of a cat.", "a photo of a dog."]


@pytest.mark.parametrize("branch_on, frozen", [("image", "text"), ("text", "image")])
def test_a_branch_off_leaves_that_encoder_exactly_frozen(branch_on, frozen):
    torch.manual_seed(0)
    plain = build_method("zeroshot", load_backbone(TINY), ["cat", "dog"]).eval()
    torch.manual_seed(0)
    model = build_method("dra", load_backbone(TINY), ["cat", "dog"], DRAConfig(branches=branch_on)).train()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        if frozen == "text":
            got, want = model.text_features(), plain.text_features()
            assert torch.equal(got, want)
            assert not torch.equal(model.image_features(images), plain.image_features(images))
        else:
            got, want = model.image_features(images), plain.image_features(images)
            assert torch.equal(got, want)
            assert not torch.allclose(model.text_features(), plain.text_features(), atol=0, rtol=0)


def test_frozen_text_prefix_is_computed_once_per_class_set(tiny_backbone, monkeypatch):
    model = build_method("dra", tiny_backbone, ["cat", "dog"]).train()
    calls = []
    original = tiny_backbone.text_prefix
    monkeypatch.setattr(tiny_backbone, "text_prefix", lambda *a: calls.append(1) or original(*a))
    images = torch.randn(2, 3, 32, 32)
    for _ in range(3):
        model(images)
    assert len(calls) == 1
    model.set_classnames(["bird", "fish", "cow"])
    assert model(images).shape == (2, 3)
    assert len(calls) == 2


def test_eval_text_features_are_computed_once_per_class_set(tiny_backbone, monkeypatch):
    model = build_method("dra", tiny_backbone, ["cat", "dog"]).eval()
    calls = []
    original = model.compute_text_features
    monkeypatch.setattr(model, "compute_text_features", lambda: calls.append(1) or original())
    images = torch.randn(2, 3, 32, 32)
    first = model(images)
    assert torch.equal(model(images), first)  # eval is deterministic
    assert len(calls) == 1
    model.train(); model.eval()
    model(images)
    assert len(calls) == 2  # training may have changed the text adapters


@pytest.mark.parametrize("method, cfg", [
    ("dra", {}), ("dra", {"channel_response": False}), ("dra", {"placement": "block"}),
    ("dra", {"learnable_scores": False}), ("adapter", {}),
])
def test_gradients_reach_every_trainable_parameter_and_no_backbone_parameter(tiny_backbone, method, cfg):
    torch.manual_seed(0)
    model = build_method(method, tiny_backbone, ["cat", "dog", "bird"], DRAConfig(**cfg)).train()
    logits = model(torch.randn(4, 3, 32, 32))
    assert torch.isfinite(logits).all()
    loss, parts = model.loss(logits, torch.tensor([0, 1, 2, 0]))
    loss.backward()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, name
            continue
        if name.endswith("channel_proj.bias"):
            continue  # exactly zero in exact arithmetic: the variance ignores a shift (see test_adapter)
        if not cfg.get("learnable_scores", True) and ("token_proj" in name or "channel_proj" in name):
            assert p.grad is None, name
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in tiny_backbone.parameters() if not p.requires_grad)
    learned = {id(p) for m in model.learned_modules().values() for p in m.parameters()}
    assert {id(p) for p in model.parameters() if p.requires_grad} == learned  # exactly the adapters
    if method == "dra":
        assert parts["reg_image"] > 0 and parts["reg_text"] > 0
        torch.testing.assert_close(loss.detach(), parts["ce"] + parts["reg_image"] + parts["reg_text"])


def test_ranks_are_recorded_for_every_adapted_block(tiny_backbone):
    model = build_method("dra", tiny_backbone, ["cat", "dog"]).train()
    model(torch.randn(2, 3, 32, 32))
    for block, branch in model.branches("image").items():
        assert branch.adapter.last_ranks.shape == (2, 5)
    for block, branch in model.branches("text").items():
        assert branch.adapter.last_ranks.shape == (2, 77)


def test_a_few_steps_lower_the_training_loss_on_real_images(eurosat_batch):
    images, labels, names = eurosat_batch
    torch.manual_seed(0)
    backbone = load_backbone(TINY)
    with torch.no_grad():
        backbone.clip.logit_scale.fill_(math.log(100.0))  # OpenAI CLIP's trained temperature
    model = build_method("dra", backbone, names, DRAConfig(start_layer=3)).train()
    opt = torch.optim.SGD(model.trainable_parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(12):
        loss, _ = model.loss(model(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.95 * losses[0], losses
    assert sum(losses[-3:]) < sum(losses[:3]), losses
