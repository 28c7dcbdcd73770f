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
    torch.testing.assert_close(_first(ParallelBranchBlock(block, zero)(x, *call, **kw)), original,
                               rtol=1e-5, atol=1e-5)
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
