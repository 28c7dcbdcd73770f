"""Training computes the last block for the pooled token only (CLS / EOT), and the plain adapter's text
runs only up to the last EOT: the loss and every adapter gradient equal those of the full computation."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY
from dra.backbones import load_backbone
from dra.config import DRAConfig
from dra.methods import build_method


def _step(method: str, cfg: dict, pooled: bool):
    backbone = load_backbone(TINY)
    torch.manual_seed(0)
    model = build_method(method, backbone, [f"class {i}" for i in range(7)], DRAConfig(**cfg))
    model.train()
    if not pooled:  # the full computation: every token through every block
        model.image_features = lambda im: backbone.encode_image(im)
        model.compute_text_features = lambda: backbone.encode_text_from(
            model.text_prefix()[1], model.text_prefix()[0], model.text_start
        )
    gen = torch.Generator().manual_seed(1)
    size = backbone.preprocess.image_size
    images = torch.randn(3, 3, size, size, generator=gen)
    torch.manual_seed(5)
    loss, parts = model.loss(model(images), torch.tensor([0, 3, 6]))
    loss.backward()
    return loss.detach(), parts, {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    "method, cfg",
    [
        ("dra", {}),
        ("adapter", {}),
        ("dra", {"placement": "block"}),
        ("adapter", {"placement": "block"}),
        ("adapter", {"branches": "text"}),
        ("dra", {"start_layer": 6}),
    ],
)
def test_pooled_rows_equal_the_full_computation(method, cfg):
    loss0, parts0, grads0 = _step(method, cfg, pooled=False)
    loss1, parts1, grads1 = _step(method, cfg, pooled=True)
    torch.testing.assert_close(loss1, loss0, rtol=1e-5, atol=1e-6)
    for k in parts0:
        torch.testing.assert_close(parts1[k], parts0[k], rtol=1e-5, atol=1e-8)
    for name in grads0:
        if name.endswith("channel_proj.bias"):  # analytically zero (design notes): float noise only
            assert float(grads1[name].abs().max()) < 1e-6
            continue
        scale = float(grads0[name].abs().max())
        torch.testing.assert_close(grads1[name], grads0[name], rtol=1e-4, atol=1e-5 * max(scale, 1e-3), msg=name)


def test_rows_are_reset_and_eval_is_unchanged():
    backbone = load_backbone(TINY)
    model = build_method("dra", backbone, ["a", "b"])
    model.train()
    size = backbone.preprocess.image_size
    model(torch.randn(2, 3, size, size))
    assert all(getattr(b, "rows", None) is None for b in [*backbone.image_blocks, *backbone.text_blocks])


@pytest.mark.parametrize("tower", ["image", "text"])
def test_own_attention_equals_multihead_attention(tower, monkeypatch):
    """With autograd the wrapped block computes attention itself: same output and gradients as open_clip's
    nn.MultiheadAttention call (float-close), with and without the causal text mask and pooled rows."""
    from dra.backbones.blocks import ParallelBranchBlock

    backbone = load_backbone(TINY)
    model = build_method("adapter", backbone, ["a", "b"])
    model.train()
    block = backbone.blocks(tower)[-1]
    assert isinstance(block, ParallelBranchBlock)
    mask = backbone.clip.attn_mask if tower == "text" else None
    n = 77 if tower == "text" else 5
    x0 = torch.randn(3, n, backbone.width(tower), generator=torch.Generator().manual_seed(0))

    def run(own: bool, rows=None):
        monkeypatch.setattr(ParallelBranchBlock, "_own_attention", lambda self: own)
        x = x0.clone().requires_grad_(True)
        block.rows = rows
        try:
            y = block(x, attn_mask=mask)
        finally:
            block.rows = None
        (y * torch.linspace(-1, 1, y.shape[1]).view(1, -1, 1)).sum().backward()
        return y.detach(), x.grad, block.branch.adapter.down.weight.grad.clone()

    for rows in (None, torch.tensor([0, 2, n - 1])):
        block.branch.zero_grad()
        want = run(False, rows)
        block.branch.zero_grad()
        got = run(True, rows)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
