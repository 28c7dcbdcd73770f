"""Chunked text encoding in training (many classes): the same loss and adapter gradients as the plain step.

The adapted text blocks run over chunks of classes under checkpointing (`AdaptedCLIP._chunked_text`);
the Gumbel noise, the L1 terms and every gradient must be those of one unchunked pass.
"""

from __future__ import annotations

import pytest
import torch

from conftest import TINY
from dra.backbones import load_backbone
from dra.config import DRAConfig
from dra.methods import build_method


def _step(method: str, chunk: int, cfg: dict, classes: int = 50, seed: int = 3, dtype=torch.float64):
    backbone = load_backbone(TINY)
    torch.manual_seed(0)
    model = build_method(method, backbone, [f"class {i}" for i in range(classes)], DRAConfig(**cfg)).to(dtype)
    model.text_chunk, model.text_chunk_above = chunk, 0
    model.train()
    size = backbone.preprocess.image_size
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(4, 3, size, size, generator=gen).to(dtype)
    labels = torch.randint(0, classes, (4,), generator=gen)
    torch.manual_seed(seed)  # the training noise
    loss, parts = model.loss(model(images), labels)
    loss.backward()
    after = torch.rand(1)  # where the RNG ended
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    reg = model.regularization()
    return loss.detach(), parts, grads, after, reg


@pytest.mark.parametrize(
    "method, cfg",
    [
        ("dra", {}),
        ("dra", {"reg_reduction": "sum"}),
        ("dra", {"noise_on_log_scores": True, "channel_response": False}),
        ("adapter", {}),
    ],
)
def test_chunked_step_equals_the_plain_step(method, cfg):
    """Chunking changes only the order of float sums. In float64 the error of a sum of n terms is at most
    n * eps * (sum of |terms|) (Higham's gamma_n); every gradient entry here sums over at most
    n = 4 images x 50 classes x 77 tokens terms, each bounded by the largest gradient entry, so
    n * eps64 * scale bounds the difference (about 1e-8 here; measured: 5e-12). A real difference (a
    chunk dropped or counted twice, another noise draw) is of the order of the gradients themselves.
    In float32 the same bound is 1e-3 * scale, too loose to test anything; hence float64."""
    loss0, parts0, grads0, after0, reg0 = _step(method, 0, cfg)  # 0: never chunk
    loss1, parts1, grads1, after1, reg1 = _step(method, 8, cfg)  # 50 classes in chunks of 8 (the last 2)
    n, eps = 4 * 50 * 77, torch.finfo(torch.float64).eps
    torch.testing.assert_close(loss1, loss0, rtol=0, atol=n * eps * max(float(loss0.abs()), 1.0))
    assert parts1.keys() == parts0.keys()
    for k in parts0:
        torch.testing.assert_close(parts1[k], parts0[k], rtol=0, atol=n * eps * max(float(parts0[k].abs()), 1.0))
    if method == "dra":
        assert reg1["text"] is not None and reg1["text"].requires_grad
    assert grads1.keys() == grads0.keys() and grads0
    scale = max(float(g.abs().max()) for g in grads0.values())
    assert scale > 1e-3  # the step has gradients to compare
    for name in grads0:
        torch.testing.assert_close(grads1[name], grads0[name], rtol=0, atol=n * eps * scale, msg=name)
    assert torch.equal(after1, after0)  # the chunks drew exactly the plain step's noise


def test_chunking_is_off_in_eval_and_below_the_threshold():
    backbone = load_backbone(TINY)
    model = build_method("dra", backbone, [f"c{i}" for i in range(10)])
    model.text_chunk, model.text_chunk_above = 4, 20
    calls = []
    model._chunked_text = lambda *a: calls.append(a)
    model.train()
    model.text_features()
    assert not calls  # 10 classes <= 20
    model.text_chunk_above = 5
    model.text_features()
    assert calls


def test_the_settings_are_checked_and_left_out_of_the_run_key():
    from dra.settings import SettingsError, load_settings

    cfg = load_settings("base2new", {}, ["train.text_chunk=16", "train.text_chunk_above=64"])
    assert cfg.train.text_chunk == 16 and cfg.train.text_chunk_above == 64
    with pytest.raises(SettingsError, match="train.text_chunk"):
        load_settings("base2new", {}, ["train.text_chunk=-1"])
    from dra.protocols.experiment import Experiment

    exp = Experiment.__new__(Experiment)  # run_key needs no device or backbone
    a = exp.run_key(load_settings("base2new", {}, []))
    b = exp.run_key(load_settings("base2new", {}, ["train.text_chunk=0"]))
    assert a == b


def test_eval_text_features_in_chunks_equal_the_plain_ones():
    backbone = load_backbone(TINY)
    model = build_method("dra", backbone, [f"class {i}" for i in range(20)]).eval()
    with torch.no_grad():
        model.text_chunk = 0
        want = model.compute_text_features()
        model.text_chunk, model.text_chunk_above = 6, 0
        got = model.compute_text_features()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
