"""MMA against a literal re-statement of its official forward (tests/mma_reference.py): block output,
gradients, logits, init, and the shared layer."""

from __future__ import annotations

import torch

from dra.checkpoints.convert import convert
from dra.config import MMAConfig
from dra.methods import build_method
from mma_reference import OfficialAdapterLearner, official_block, official_logits

CLASSES = ["circle", "square", "triangle"]


def _pair(backbone, start=5):
    """Our MMA and an official learner holding the same (random, non-trivial) weights."""
    torch.manual_seed(1)
    official = OfficialAdapterLearner(
        backbone.text_width, backbone.image_width, len(backbone.text_blocks), start, len(backbone.text_blocks)
    )
    with torch.no_grad():
        for p in official.parameters():
            p.add_(0.1 * torch.randn_like(p))  # non-zero biases too
    model = build_method("mma", backbone, CLASSES, MMAConfig(start_layer=start))
    model.load_adapter_state_dict(convert("mma", official.state_dict()))
    return model, official


def test_block_output_and_gradients_equal_the_official_block(tiny_backbone):
    model, official = _pair(tiny_backbone)
    wrapped = tiny_backbone.image_blocks[5]  # block 6 (1-based)
    x = torch.randn(2, 5, tiny_backbone.image_width, requires_grad=True)
    got = wrapped(x)
    x2 = x.detach().clone().requires_grad_(True)
    want = official_block(wrapped.base, x2, official.visual_adapter[6], official.shared_adapter[6], 0.001)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    g = torch.randn_like(got)
    got.backward(g)
    want.backward(g)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-6)
    pairs = [
        (model.branches("image")[6].down.weight, official.visual_adapter[6].down[0].weight),
        (model.branches("image")[6].up.bias, official.visual_adapter[6].up.bias),
        (model.branches("image")[6].shared.weight, official.shared_adapter[6][0].weight),
    ]
    for ours, theirs in pairs:
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-4, atol=1e-5 * float(theirs.grad.abs().max()))
        assert ours.grad.abs().sum() > 0


def test_text_block_with_the_causal_mask(tiny_backbone):
    model, official = _pair(tiny_backbone)
    wrapped = tiny_backbone.text_blocks[4]
    x = torch.randn(2, 77, tiny_backbone.text_width)
    mask = tiny_backbone.clip.attn_mask
    want = official_block(wrapped.base, x, official.text_adapter[5], official.shared_adapter[5], 0.001, mask)
    torch.testing.assert_close(wrapped(x, attn_mask=mask), want, rtol=1e-6, atol=1e-6)


def test_logits_equal_the_official_model(tiny_backbone):
    model, official = _pair(tiny_backbone, start=3)
    images = torch.randn(3, 3, 32, 32)
    tokens = tiny_backbone.tokenize(model.prompts)
    with torch.no_grad():
        want = official_logits(tiny_backbone.clip, official, tokens, images)
        got = model.eval()(images)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_shared_layer_is_one_module_per_depth_and_init_is_kaiming_fan_out(tiny_backbone):
    torch.manual_seed(0)
    model = build_method("mma", tiny_backbone, CLASSES)
    image, text = model.branches("image"), model.branches("text")
    assert sorted(image) == sorted(text) == [5, 6]
    for k in (5, 6):
        assert image[k].shared is text[k].shared
    assert all(b.down.bias.abs().sum() == 0 and b.up.bias.abs().sum() == 0 for b in image.values())
    counts = model.parameter_counts()
    assert counts["shared"] == 2 * (32 * 32 + 32)
    assert counts["trainable"] == sum(p.numel() for p in model.trainable_parameters())
    assert {k for k in model.adapter_state_dict() if k.startswith("adapters.shared.")} == {
        f"adapters.shared.{k}.{p}" for k in (5, 6) for p in ("weight", "bias")
    }


# -- import of official (Dassl-format) checkpoints ------------------------------------------------------


def _dassl_file(path, official, classnames, backbone, extra=None):
    """What the official trainer saves: {"state_dict": adapter_learner.state_dict(), "epoch": N, ...}."""
    state = dict(official.state_dict())
    tokens = backbone.tokenize([f"a photo of a {c}." for c in classnames])
    state["token_embedding"] = backbone.clip.token_embedding(tokens).detach()
    state["tokenized_prompts"] = tokens
    torch.save({"state_dict": state, "epoch": 5, "optimizer": None, "scheduler": None, **(extra or {})}, path)
    return tokens


def test_import_round_trip_gives_the_official_logits(tmp_path):
    from conftest import TINY
    from dra.backbones import load_backbone
    from dra.checkpoints import load_model
    from dra.checkpoints.convert import import_checkpoint

    backbone = load_backbone(TINY)  # pretrained=None: the seeded random weights load_model rebuilds
    torch.manual_seed(3)
    official = OfficialAdapterLearner(backbone.text_width, backbone.image_width, 6, 3, 6)
    with torch.no_grad():
        for p in official.parameters():
            p.add_(0.1 * torch.randn_like(p))
    names = ["annual crop", "forest", "sea lake"]
    tokens = _dassl_file(tmp_path / "model.pth.tar-5", official, names, backbone)
    info = import_checkpoint(tmp_path / "model.pth.tar-5", "mma", TINY, None, tmp_path / "imported")
    assert info["epoch"] == 5 and info["config"]["start_layer"] == 3 and info["config"]["end_layer"] == 6
    model = load_model(tmp_path / "imported.safetensors", pretrained="").eval()
    assert model.classnames == names  # read back from tokenized_prompts
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = official_logits(backbone.clip, official, tokens, images)
    torch.testing.assert_close(model(images), want, rtol=1e-5, atol=1e-5)
    # --classnames wins over the tokens
    (tmp_path / "names.txt").write_text("A\nB\n\nC\n")
    from dra.labels import read_classnames

    import_checkpoint(
        tmp_path / "model.pth.tar-5", "mma", TINY, None, tmp_path / "named", read_classnames(tmp_path / "names.txt")
    )
    assert load_model(tmp_path / "named.safetensors", pretrained="").classnames == ["A", "B", "C"]


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_import_never_unpickles_code_and_names_foreign_keys(tmp_path, capsys):
    import pytest

    from conftest import TINY
    from dra.checkpoints import CheckpointError
    from dra.checkpoints.convert import import_checkpoint

    torch.save({"state_dict": {}, "epoch": 1, "payload": _Payload()}, tmp_path / "evil.pth.tar-1")
    with pytest.raises(CheckpointError, match="tensors only"):
        import_checkpoint(tmp_path / "evil.pth.tar-1", "mma", TINY, None, tmp_path / "out")
    assert "this must never run" not in capsys.readouterr().out
    torch.save({"state_dict": {"prompt_learner.ctx": torch.zeros(4, 48)}, "epoch": 1}, tmp_path / "coop.pth.tar-1")
    with pytest.raises(CheckpointError, match="'prompt_learner.ctx'"):
        import_checkpoint(tmp_path / "coop.pth.tar-1", "mma", TINY, None, tmp_path / "out")
    assert not (tmp_path / "out.safetensors").exists()


def test_import_checkpoint_command_then_eval(tmp_path):
    import json

    from conftest import TINY
    from dra.backbones import load_backbone
    from safety_helpers import invoke

    backbone = load_backbone(TINY)
    official = OfficialAdapterLearner(backbone.text_width, backbone.image_width, 6, 5, 6)
    from dra.data import build_dataset, subsample_classes

    names = subsample_classes(build_dataset("shapes"), "base").classnames
    _dassl_file(tmp_path / "model.pth.tar-5", official, names, backbone)
    out = invoke(
        "import-checkpoint",
        tmp_path / "model.pth.tar-5",
        "--method",
        "mma",
        "--model",
        TINY,
        "--pretrained",
        "none",
        "--output",
        tmp_path / "mma.safetensors",
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["parameter_counts"]["trainable"] > 0
    ok = invoke(
        "eval",
        "--dataset",
        "shapes",
        "--checkpoint",
        tmp_path / "mma.safetensors",
        "--subsample",
        "base",
        "test_per_class=2",
        "eval.num_workers=0",
        "--output",
        tmp_path,
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["method"] == "mma"
