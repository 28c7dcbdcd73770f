"""Loading CLIP: random, local files (open_clip and OpenAI TorchScript), and offline failures."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY
from dra.backbones import BackboneError, load_backbone


def test_openai_tag_offline_fails_at_once_with_the_fix(monkeypatch):
    """ "At once": offline, the loader neither resolves nor connects to any host before it gives up."""
    import socket

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tried = []

    def no_network(*args, **kwargs):
        tried.append(args[:1])
        raise OSError("the network was touched")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", lambda self, *a: no_network(*a))
    with pytest.raises(BackboneError, match=r"--pretrained /path/to/ViT-B-16\.pt"):
        load_backbone("ViT-B-16", pretrained="openai")
    assert tried == []


def test_unknown_tag_and_missing_file_and_unknown_model():
    with pytest.raises(BackboneError, match="neither a file nor a known open_clip tag"):
        load_backbone(TINY, pretrained="laion9000")
    with pytest.raises(BackboneError, match="does not exist"):
        load_backbone(TINY, pretrained="/no/such/file.pt")
    with pytest.raises(BackboneError, match="unknown model 'ViT-Q-99'"):
        load_backbone("ViT-Q-99")


def test_open_clip_checkpoint_file_round_trip(tmp_path):
    torch.manual_seed(1)
    source = load_backbone(TINY)
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.clip.state_dict().items()}}, tmp_path / "ck.pt")
    loaded = load_backbone(TINY, pretrained=str(tmp_path / "ck.pt"))
    for (k, a), b in zip(source.clip.state_dict().items(), loaded.clip.state_dict().values()):
        assert torch.equal(a, b), k
    assert loaded.info == {"model": TINY, "pretrained": str(tmp_path / "ck.pt"), "quick_gelu": False}
    assert all(not p.requires_grad for p in loaded.parameters())


def test_openai_torchscript_file_loads_with_quick_gelu(tmp_path):
    torch.manual_seed(2)
    source = load_backbone(TINY, quick_gelu=True)  # what OpenAI trained with
    with pytest.warns(FutureWarning):  # torch.jit.script is deprecated, but OpenAI ships such files
        torch.jit.script(source.clip).save(str(tmp_path / "tiny-openai.pt"))
    loaded = load_backbone(TINY, pretrained=str(tmp_path / "tiny-openai.pt"))
    assert loaded.info["quick_gelu"] is True
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.clip.encode_image(images), source.clip.encode_image(images))
        # The same weights under plain GELU give other features: the activation matters.
        torch.save(source.clip.state_dict(), tmp_path / "plain.pt")
        gelu = load_backbone(TINY, pretrained=str(tmp_path / "plain.pt"))
        assert gelu.info["quick_gelu"] is False
        assert not torch.allclose(gelu.clip.encode_image(images), source.clip.encode_image(images))


def test_weights_of_another_architecture_are_refused(tmp_path):
    torch.save(load_backbone(TINY).clip.state_dict(), tmp_path / "tiny.pt")
    with pytest.raises(BackboneError, match=r"do not fit model ViT-B-32"):
        load_backbone("ViT-B-32", pretrained=str(tmp_path / "tiny.pt"))


def test_tiny_config_uses_the_clip_preprocessing():
    b = load_backbone(TINY)
    assert b.preprocess.image_size == 32
    assert b.preprocess.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
