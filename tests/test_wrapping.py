"""Methods put real modules into CLIP's blocks: visible, restorable, checkpointing- and compile-safe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import TINY
from dra.backbones import BackboneError, ModuleWrapper, ParallelBranchBlock, load_backbone
from dra.backbones.wrapping import WrapError, unwrap, wrap
from dra.config import DRAConfig
from dra.methods import build_method

CLASSES = ["cat", "dog", "bird"]


def test_print_and_state_dict_show_the_adapters_inside_the_blocks(tiny_backbone):
    model = build_method("dra", tiny_backbone, CLASSES, DRAConfig(start_layer=5))
    text = repr(model)
    # image blocks 5, 6 and text blocks 5, 6 of the tiny model (torch prints equal siblings once, "2 x")
    assert text.count("(4-5): 2 x ParallelBranchBlock(") == 2 and text.count("DynamicRankAdapter(") == 2
    assert "placement='attention'" in text
    wrapped = [n for n, m in model.named_modules() if isinstance(m, ParallelBranchBlock)]
    assert wrapped == [
        f"backbone.clip.{t}.resblocks.{i}" for t in ("visual.transformer", "transformer") for i in (4, 5)
    ]
    block = tiny_backbone.image_blocks[4]
    assert isinstance(block, ParallelBranchBlock) and block.branch is model.adapters["image"]["5"]
    keys = set(block.state_dict())
    assert {"branch.adapter.down.weight", "branch.adapter.up.bias", "base.ln_1.weight"} <= keys
    assert not isinstance(tiny_backbone.image_blocks[3], ModuleWrapper)  # blocks before h stay as they were


def test_checkpoint_keys_are_the_ones_of_the_hook_era(tiny_backbone):
    model = build_method("dra", tiny_backbone, CLASSES, DRAConfig(start_layer=6, branches="image"))
    parts = [f"{m}.{p}" for m in ("down", "token_proj", "channel_proj", "mid", "up") for p in ("weight", "bias")]
    assert sorted(model.adapter_state_dict()) == sorted(f"adapters.image.6.adapter.{p}" for p in parts)


def test_unload_puts_the_original_blocks_back(tiny_backbone):
    originals = list(tiny_backbone.image_blocks) + list(tiny_backbone.text_blocks)
    keys = set(tiny_backbone.state_dict())
    images = torch.randn(2, 3, 32, 32)
    zeroshot = build_method("zeroshot", tiny_backbone, CLASSES).eval()
    want = zeroshot(images)
    model = build_method("adapter", tiny_backbone, CLASSES, DRAConfig(start_layer=4))
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(1.0)  # an adapter that visibly changes the output
    assert not torch.allclose(model.eval()(images), want)
    model.unload()
    assert list(tiny_backbone.image_blocks) + list(tiny_backbone.text_blocks) == originals
    assert set(tiny_backbone.state_dict()) == keys
    zeroshot.clear_text_cache()
    torch.testing.assert_close(zeroshot(images), want, rtol=0, atol=0)
    build_method("dra", tiny_backbone, CLASSES)  # the backbone takes a new method after unloading


def test_a_second_method_on_a_wrapped_backbone_is_refused(tiny_backbone):
    build_method("dra", tiny_backbone, CLASSES)
    with pytest.raises(
        BackboneError, match="image block 5 of ViT-Tiny-16-test: .* already carries a ParallelBranchBlock"
    ):
        build_method("adapter", tiny_backbone, CLASSES)


def test_wrap_and_unwrap_check_what_they_replace():
    parent = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with pytest.raises(WrapError, match="must keep the original module as `base`"):
        wrap(parent, "0", lambda base: ModuleWrapper(nn.Linear(2, 2)))
    with pytest.raises(WrapError, match="no submodule '7'"):
        wrap(parent, "7", ModuleWrapper)
    with pytest.raises(WrapError, match="is not wrapped"):
        unwrap(parent, "1")
    original = parent[0]
    wrap(parent, "0", ModuleWrapper)
    with pytest.raises(WrapError, match="already carries a ModuleWrapper"):
        wrap(parent, "0", ModuleWrapper)
    assert unwrap(parent, "0") is original and parent[0] is original


def test_a_wrapper_answers_for_its_base_so_the_first_block_can_be_adapted(tiny_backbone):
    wrapped = ModuleWrapper(nn.Linear(2, 3))
    assert wrapped.out_features == 3 and wrapped.weight is wrapped.base.weight
    with pytest.raises(AttributeError):
        wrapped.no_such_thing  # noqa: B018
    # open_clip asks resblocks[0].get_weight_dtype(): adapting from block 1 (Fig. 3b's h=1) must run
    model = build_method("dra", tiny_backbone, CLASSES, DRAConfig(start_layer=1)).train()
    assert isinstance(tiny_backbone.image_blocks[0], ParallelBranchBlock)
    assert tiny_backbone.image_blocks[0].get_weight_dtype() == torch.float32
    loss, _ = model.loss(model(torch.randn(2, 3, 32, 32)), torch.tensor([0, 1]))
    assert torch.isfinite(loss)


def test_train_mode_reaches_the_branches_while_clip_stays_in_eval(tiny_backbone):
    model = build_method("dra", tiny_backbone, CLASSES).train()
    block = tiny_backbone.image_blocks[5]
    assert block.training and block.branch.training and block.branch.adapter.training
    assert not block.base.training and not tiny_backbone.clip.training
    assert not tiny_backbone.image_blocks[0].training
    model.eval()
    assert not block.branch.adapter.training


def _loss_and_grads(model, images, labels):
    torch.manual_seed(7)  # the Gumbel noise of the masks
    loss, _ = model.loss(model(images), labels)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("method", ["dra", "adapter"])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(method):
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    runs = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = build_method(method, load_backbone(TINY), CLASSES, DRAConfig(start_layer=4)).train()
        model.backbone.clip.set_grad_checkpointing(checkpointing)
        runs.append(_loss_and_grads(model, images, labels))
    (loss_a, grads_a), (loss_b, grads_b) = runs
    torch.testing.assert_close(loss_b, loss_a, rtol=0, atol=0)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == 2 * 3 * (10 if method == "dra" else 6)
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-5, atol=1e-7, msg=name)


def test_torch_compile_gives_the_same_logits(tiny_backbone):
    torch.manual_seed(0)
    model = build_method("dra", tiny_backbone, CLASSES, DRAConfig(start_layer=5)).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = model(images)
        # aot_eager: dynamo traces the wrapped blocks (graph breaks, guards) without inductor codegen,
        # which takes ~40 s on 2 cores; the module structure is what this test is about.
        got = torch.compile(model, backend="aot_eager")(images)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("placement", ["attention", "block"])
@pytest.mark.parametrize("method", ["dra", "adapter"])
def test_inference_path_equals_the_autograd_path(tiny_backbone, method, placement):
    """Without autograd a wrapped open_clip block accumulates its sums in place (`_inference`): the
    same logits and text features as the path with autograd, and the block's input is left alone."""
    torch.manual_seed(0)
    model = build_method(method, tiny_backbone, CLASSES, DRAConfig(start_layer=4, placement=placement)).eval()
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.1 * torch.randn_like(p))  # a branch that adds something visible
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got, got_text = model(images), model.compute_text_features()
        block = tiny_backbone.image_blocks[5]
        x = torch.randn(2, 50, tiny_backbone.image_width)
        x0 = x.clone()
        block(x)
        assert torch.equal(x, x0)
    with torch.enable_grad():
        want, want_text = model(images), model.compute_text_features()
    torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_text, want_text.detach(), rtol=1e-5, atol=1e-6)
    with torch.no_grad(), pytest.raises(RuntimeError, match="inference"):
        block.branch.train().add_to(x, x)


def test_first_text_block_keeps_the_frozen_prefix_parts_exactly(tiny_backbone):
    """Training: the first adapted text block computes LN1 and attention of the cached prefix once and
    reuses them (ParallelBranchBlock.frozen_input): the same loss and gradients as computing them afresh,
    and a new class set is not served the old parts."""
    torch.manual_seed(0)
    model = build_method("dra", tiny_backbone, CLASSES, DRAConfig(start_layer=4)).train()
    first = tiny_backbone.text_blocks[model.text_start]
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    runs = []
    for fresh in (True, False, False):
        model.zero_grad(set_to_none=True)
        if fresh:
            first._frozen = None
        runs.append(_loss_and_grads(model, images, labels))
        assert first._frozen is not None and first._frozen[0] is model.text_prefix()[1]
    for loss, grads in runs[1:]:
        torch.testing.assert_close(loss, runs[0][0], rtol=0, atol=0)
        for name, g in grads.items():
            torch.testing.assert_close(g, runs[0][1][name], rtol=0, atol=0, msg=name)
    model.set_classnames(["fish", "horse"])
    torch.manual_seed(3)  # the masks' noise
    after = model.compute_text_features()
    assert first._frozen[0] is model.text_prefix()[1]
    first._frozen = None
    torch.manual_seed(3)
    torch.testing.assert_close(after, model.compute_text_features(), rtol=0, atol=0)
