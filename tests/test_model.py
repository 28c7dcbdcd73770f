"""DRA inside CLIP: placement, frozen backbone, caching, parameter counts, gradients, a falling loss."""

from __future__ import annotations

import contextlib

import pytest
import torch

from conftest import TINY, meta_backbone
from dra.backbones import BackboneError, load_backbone
from dra.config import DRAConfig
from dra.methods import build_method


def adapter_params(d: int, r: int, square_layers: int) -> int:
    """down (d->r) + `square_layers` r->r Linears + up (r->d), all with bias."""
    return (d * r + r) + square_layers * (r * r + r) + (r * d + d)


@contextlib.contextmanager
def adapted(backbone, method="dra", classnames=("a",), config=None):
    """A method built on a shared backbone, its hooks removed even when the test fails."""
    model = build_method(method, backbone, list(classnames), config or DRAConfig())
    try:
        yield model
    finally:
        model.unload()


@pytest.fixture(scope="module")
def vit_b16():
    return meta_backbone("ViT-B-16")


@pytest.fixture(scope="module")
def vit_b16_dra():
    """The paper's model (DRA, defaults, ViT-B/16) on its own backbone; its hooks released at module end."""
    backbone = meta_backbone("ViT-B-16")
    model = build_method("dra", backbone, ["a"])
    try:
        yield model
    finally:
        model.unload()


# Per-block counts with d the encoder width and r = 32 (d*r + r, then 3 x (r*r + r) for W_t, W_c, W_p,
# then r*d + d):
#   image, d = 768: 24,576 + 32 + 3 x 1,056 + 24,576 + 768 = 53,120
#   text,  d = 512: 16,384 + 32 + 3 x 1,056 + 16,384 + 512 = 36,480
# Without W_c one r x r Linear (1,056) less per block: 52,064 and 35,424; the plain adapter keeps only
# W_p (two fewer, 2,112): 51,008 and 34,368. Blocks h..12 with h = 5 are 8 per encoder, with h = 7 six.
@pytest.mark.parametrize(
    "changes, method, image, text",
    [
        ({}, "dra", 8 * 53_120, 8 * 36_480),  # 424,960 + 291,840 = 716,800 (the paper's count)
        ({"branches": "image"}, "dra", 424_960, 0),
        ({"branches": "text"}, "dra", 0, 291_840),
        ({"channel_response": False}, "dra", 8 * 52_064, 8 * 35_424),  # 416,512 and 283,392
        ({"regularization": False, "learnable_scores": False}, "dra", 424_960, 291_840),  # W_t, W_c stay
        ({"start_layer": 7}, "dra", 6 * 53_120, 6 * 36_480),  # 318,720 and 218,880
        ({"num_groups": 2, "rank_ratios": (1.0, 0.5)}, "dra", 424_960, 291_840),  # groups add no parameters
        ({}, "adapter", 8 * 51_008, 8 * 34_368),  # 408,064 and 274,944
    ],
)
def test_exact_parameter_counts_vit_b16(vit_b16, changes, method, image, text):
    with adapted(vit_b16, method, config=DRAConfig(**changes)) as model:
        counts = model.parameter_counts()
        assert (counts["image"], counts["text"], counts["trainable"]) == (image, text, image + text)
        # and the count is what actually trains: the tensors with requires_grad, none of the backbone's
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == image + text
        learned = {id(p) for m in model.learned_modules().values() for p in m.parameters()}
        assert {id(p) for p in vit_b16.parameters() if p.requires_grad} == learned  # the backbone holds the
        # adapters inside its wrapped blocks; nothing else of it trains


def test_paper_count_is_716800(vit_b16_dra):
    assert vit_b16_dra.parameter_counts() == {"trainable": 716_800, "image": 424_960, "text": 291_840}
    assert sum(t.numel() for t in vit_b16_dra.adapter_state_dict().values()) == 716_800


# r x r Linears: 3 x (r*r + r) = 216 (r = 8), 816 (r = 16), 12,480 (r = 64). Per block, image / text:
#   r = 8:   6,144 + 8 + 216 + 6,144 + 768 = 13,280       4,096 + 8 + 216 + 4,096 + 512 = 8,928
#   r = 16: 12,288 + 16 + 816 + 12,288 + 768 = 26,176     8,192 + 16 + 816 + 8,192 + 512 = 17,728
#   r = 64: 49,152 + 64 + 12,480 + 49,152 + 768 = 111,616 32,768 + 64 + 12,480 + 32,768 + 512 = 78,592
@pytest.mark.parametrize(
    "rank, trainable", [(8, 8 * (13_280 + 8_928)), (16, 8 * (26_176 + 17_728)), (64, 8 * (111_616 + 78_592))]
)
def test_rank_sweep_counts(vit_b16, rank, trainable):
    with adapted(vit_b16, config=DRAConfig(rank=rank)) as model:
        assert model.parameter_counts()["trainable"] == trainable  # 177,664 / 351,232 / 1,521,664
        assert trainable == 8 * (adapter_params(768, rank, 3) + adapter_params(512, rank, 3))


# ViT-B/32: the same widths and depths as ViT-B/16 (patch size adds no adapter parameter).
# ViT-L/14: image width 1,024, 24 layers -> blocks 5..24 = 20; text width 768, 12 layers -> 8.
#   image block: 32,768 + 32 + 3,168 + 32,768 + 1,024 = 69,760; x 20 = 1,395,200
#   text block:  24,576 + 32 + 3,168 + 24,576 + 768 = 53,120; x 8 = 424,960
@pytest.mark.parametrize(
    "name, image, text, backbone_params",
    [
        ("ViT-B-32", 424_960, 291_840, 151_277_313),
        ("ViT-L-14", 1_395_200, 424_960, 427_616_513),
    ],
)
def test_other_vit_configs(name, image, text, backbone_params):
    backbone = meta_backbone(name)  # counted on the meta device: nothing allocated
    assert backbone.clip.visual.conv1.weight.is_meta
    assert sum(p.numel() for p in backbone.parameters()) == backbone_params  # open_clip's architecture
    with adapted(backbone) as model:
        counts = model.parameter_counts()
        assert (counts["image"], counts["text"], counts["trainable"]) == (image, text, image + text)


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
    model.train()
    model.eval()
    model(images)
    assert len(calls) == 2  # training may have changed the text adapters


@pytest.mark.parametrize(
    "method, cfg",
    [
        ("dra", {}),
        ("dra", {"channel_response": False}),
        ("dra", {"placement": "block"}),
        ("dra", {"learnable_scores": False}),
        ("adapter", {}),
    ],
)
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
    for _block, branch in model.branches("image").items():
        assert branch.adapter.last_ranks.shape == (2, 5)
    for _block, branch in model.branches("text").items():
        assert branch.adapter.last_ranks.shape == (2, 77)


# Learning itself (accuracy that rises above zero-shot, not a loss that falls on a random backbone) is
# tested in the pocket world: tests/test_pocket_learning.py, for every trained method.
