"""The backbone layer: the factory maps names to loaders, packaged weights come from one table, and
the image-input hook (MaPLe, MetaPrompt) names the fix where a backbone has none."""

from __future__ import annotations

import pytest

from dra.backbones import BackboneError, CLIPBackbone, OpenCLIPBackbone, factory, load_backbone
from dra.backbones.weights import PACKAGED, packaged, packaged_file


def test_factory_sends_a_prefixed_name_to_its_loader(monkeypatch):
    calls = []
    monkeypatch.setitem(factory.LOADERS, "fake:", lambda name, pretrained, quick_gelu: calls.append((name, pretrained)))
    load_backbone("fake:my-model", "w")
    assert calls == [("fake:my-model", "w")]
    assert factory.LOADERS["hf:"] is factory._hf


def test_open_clip_names_give_an_open_clip_backbone_with_an_image_input_slot():
    b = load_backbone("ViT-Tiny-16-test")
    assert isinstance(b, OpenCLIPBackbone) and isinstance(b, CLIPBackbone)
    parent, name = b.image_input_slot
    assert parent is b.clip.visual and name == "ln_pre"


def test_a_timm_trunk_has_no_image_input_slot_and_says_so():
    b = load_backbone("ViT-Tiny-timm-test")
    with pytest.raises(BackboneError, match="no place to add image prompts .*use an open_clip ViT"):
        b.wrap_image_input(lambda base: base)


def test_the_interface_cannot_be_built_alone():
    with pytest.raises(TypeError, match="abstract"):
        CLIPBackbone()


def test_packaged_weights_table():
    entry = packaged("pocket")
    assert entry is PACKAGED["pocket"] and entry.model == "ViT-Pocket-P6"
    assert entry.path.name == "pocket.safetensors" and entry.path.parent.name == "pocket"
    assert packaged("openai") is None and packaged(None) is None
    with pytest.raises(
        BackboneError, match=r"--pretrained pocket is .* \(ViT-Pocket-P6\), not ViT-B-16: pass --model ViT-Pocket-P6"
    ):
        packaged_file(entry, "ViT-B-16")


def test_missing_packaged_weights_name_how_to_make_them(tmp_path, monkeypatch):
    from dataclasses import replace

    gone = replace(PACKAGED["pocket"], path=tmp_path / "none.safetensors")
    with pytest.raises(BackboneError, match=r"not installed .*none.safetensors.*dra pocket pretrain --ship"):
        packaged_file(gone, "ViT-Pocket-P6")


def test_the_backbone_layer_does_not_import_the_pocket_world():
    import subprocess
    import sys

    code = "import sys, dra.backbones, dra.backbones.weights_id; print(sorted(m for m in sys.modules if m.startswith('dra.pocket')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
