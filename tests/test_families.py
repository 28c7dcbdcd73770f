"""Other CLIP families: timm towers inside open_clip (SigLIP-style ViT, EVA02) and Hugging Face CLIPModel /
SiglipModel. Each architecture is built from a small config with random weights (nothing is downloaded);
the wrapped block computes x + Attn(LN1 x) + branch(LN1 x) then the block's MLP, gradients reach exactly
the adapters, and the parameter count is the formula's."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from dra.backbones import ParallelBranchBlock, load_backbone
from dra.backbones.blocks import block_anatomy
from dra.config import DRAConfig
from dra.methods import build_method
from test_model import adapter_params

TIMM_FAMILIES = [("ViT-Tiny-timm-test", "timm", "Block"), ("EVA02-Tiny-timm-test", "timm_eva", "EvaBlock")]


class Probe(nn.Module):
    """A branch with a known output (a fixed linear map) that records what it was given."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d, d)
        self.seen = None

    def forward(self, y):
        self.seen = y
        return self.lin(y)


def _gamma(g, t):
    return t if g is None else g * t


def reference_terms(anatomy: str, b, x, **kw):
    """(LN1 x, the attention residual term, a function x -> the MLP residual term), written out per family."""
    if anatomy == "timm":
        y = b.norm1(x)
        return y, b.ls1(b.attn(y, **kw)), lambda h: b.ls2(b.mlp(b.norm2(h)))
    if anatomy == "timm_eva":
        y = b.norm1(x)
        return y, _gamma(b.gamma_1, b.attn(y, **kw)), lambda h: _gamma(b.gamma_2, b.mlp(b.norm2(h)))
    y = b.layer_norm1(x)
    a = b.self_attn(hidden_states=y, **kw)
    return y, (a[0] if isinstance(a, tuple) else a), lambda h: b.mlp(b.layer_norm2(h))


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def check_block_equation(block, anatomy: str, x, call=(), attn_kw=None, **kw):
    """Zero branch -> the original block; a probe branch p -> x + Attn(LN1 x) + p(LN1 x), then + MLP."""
    torch.manual_seed(0)
    block.eval()
    original = _first(block(x, *call, **kw))
    zero = Probe(x.shape[-1])
    nn.init.zeros_(zero.lin.weight)
    nn.init.zeros_(zero.lin.bias)
    torch.testing.assert_close(_first(ParallelBranchBlock(block, zero)(x, *call, **kw)), original, rtol=1e-5, atol=1e-5)
    probe = Probe(x.shape[-1])
    out = _first(ParallelBranchBlock(block, probe)(x, *call, **kw))
    y, attn, mlp = reference_terms(anatomy, block, x, **(kw if attn_kw is None else attn_kw))
    torch.testing.assert_close(probe.seen, y)
    h = x + attn + probe.lin(y)
    torch.testing.assert_close(out, h + mlp(h), rtol=1e-5, atol=1e-5)


def check_method(backbone, image_blocks: int, text_blocks: int, image_size: int):
    torch.manual_seed(0)
    model = build_method("dra", backbone, ["cat", "dog", "bird"], DRAConfig()).train()
    counts = model.parameter_counts()
    assert counts["image"] == image_blocks * adapter_params(backbone.image_width, 32, 3)
    assert counts["text"] == text_blocks * adapter_params(backbone.text_width, 32, 3)
    logits = model(torch.randn(2, 3, image_size, image_size))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    loss, parts = model.loss(logits, torch.tensor([0, 2]))
    loss.backward()
    assert parts["reg_image"] > 0 and parts["reg_text"] > 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, name
        elif not name.endswith("channel_proj.bias"):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    model.eval()
    with torch.no_grad():
        a = model(torch.ones(1, 3, image_size, image_size))
    model.unload()
    assert not any(isinstance(b, ParallelBranchBlock) for b in backbone.image_blocks)
    return a


@pytest.mark.parametrize("name, anatomy, cls", TIMM_FAMILIES)
def test_timm_towers_inside_open_clip(name, anatomy, cls):
    backbone = load_backbone(name)
    block = backbone.image_blocks[3]
    assert type(block).__name__ == cls and block_anatomy(block).family == anatomy
    x = torch.randn(2, 10, backbone.image_width)
    kw = {}
    if anatomy == "timm_eva":
        rope = backbone.clip.visual.trunk.rope
        kw["rope"] = rope.get_embed() if rope is not None else None
        x = torch.randn(2, 1 + 16 * 16, backbone.image_width)  # cls + the 16x16 grid the rope is made for
    check_block_equation(block, anatomy, x, **kw)
    check_method(backbone, image_blocks=8, text_blocks=2, image_size=backbone.preprocess.image_size)


def test_an_unknown_block_is_refused_with_the_known_families():
    from dra.backbones import WrapError

    with pytest.raises(WrapError, match="timm Block / EvaBlock, Hugging Face CLIPEncoderLayer"):
        ParallelBranchBlock(nn.Linear(3, 3), nn.Identity())


# -- Hugging Face transformers -------------------------------------------------------------------------

needs_transformers = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None, reason="transformers is not installed (pip install 'dra[hf]')"
)


def tiny_hf(kind: str):
    import transformers

    common = dict(hidden_size=64, intermediate_size=128, num_attention_heads=2, num_hidden_layers=6)
    if kind == "clip":
        config = transformers.CLIPConfig(
            text_config=dict(
                common,
                vocab_size=49408,
                max_position_embeddings=77,
                bos_token_id=49406,
                eos_token_id=49407,
                pad_token_id=0,
            ),
            vision_config=dict(common, image_size=32, patch_size=16),
            projection_dim=48,
        )
        return transformers.CLIPModel(config)
    config = transformers.SiglipConfig(
        text_config=dict(common, vocab_size=1000, max_position_embeddings=16),
        vision_config=dict(common, image_size=32, patch_size=16),
    )
    return transformers.SiglipModel(config)


@needs_transformers
@pytest.mark.parametrize("kind, layer", [("clip", "CLIPEncoderLayer"), ("siglip", "SiglipEncoderLayer")])
def test_hugging_face_clip_and_siglip(kind, layer, tmp_path):
    from dra.backbones.hf import HFCLIPBackbone

    torch.manual_seed(0)
    model = tiny_hf(kind).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if kind == "clip":  # through the loader: a local folder, offline, open_clip's BPE without tokenizer files
        model.save_pretrained(tmp_path / "tiny-clip")
        backbone = load_backbone(f"hf:{tmp_path / 'tiny-clip'}", pretrained="hf")  # the folder's weights
        assert backbone.info["pretrained"] == "hf"
        torch.testing.assert_close(backbone.clip.logit_scale, model.logit_scale)
    else:
        backbone = HFCLIPBackbone(
            model,
            {"model": "hf:tiny-siglip", "pretrained": "random", "quick_gelu": False},
            tokenizer=lambda prompts: torch.randint(
                1, 1000, (len(prompts), 16), generator=torch.Generator().manual_seed(0)
            ),
        )
    block = backbone.image_blocks[2]
    assert type(block).__name__ == layer and block_anatomy(block).family == "hf"
    check_block_equation(block, "hf", torch.randn(2, 5, 64), call=(None,))
    text_block = backbone.text_blocks[4]
    check_block_equation(text_block, "hf", torch.randn(2, 7, 64), call=(None,))
    check_method(backbone, image_blocks=2, text_blocks=2, image_size=32)


@needs_transformers
def test_hugging_face_offline_errors_name_the_fix(tmp_path, monkeypatch):
    from dra.backbones import BackboneError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match="not in the local cache.*huggingface-cli download|offline"):
        load_backbone("hf:nobody-xyz/clip-that-is-not-cached")
    with pytest.raises(BackboneError, match="does not exist"):
        load_backbone(f"hf:{tmp_path / 'missing'}")


@needs_transformers
def test_hugging_face_checkpoint_round_trip(tmp_path):
    import dra

    torch.manual_seed(0)
    tiny_hf("clip").save_pretrained(tmp_path / "tiny-clip")
    name = f"hf:{tmp_path / 'tiny-clip'}"
    model = dra.create_model(["cat", "dog"], model=name, pretrained="hf")
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.01)
    path = dra.save_adapters(model, tmp_path / "ck")
    again = dra.load_model(path)
    assert again.backbone.name == name and again.backbone.info["pretrained"] == "hf"
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    again.eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
