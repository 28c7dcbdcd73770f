"""LFA's features: extracted once, kept as safetensors when the backbone's weights are named, read back."""

from __future__ import annotations

import torch
from safetensors import safe_open

from dra.data import build_dataset, build_transforms
from dra.methods import features


def test_named_weights_are_cached_as_safetensors_and_read_back(tiny_backbone, tmp_path, monkeypatch):
    monkeypatch.setenv("DRA_CACHE_DIR", str(tmp_path))
    items = build_dataset("shapes").train[:3]
    tf = build_transforms(False, 32)
    tiny_backbone.info["pretrained"] = "some-weights"  # a named source: cacheable
    first = features.image_features(tiny_backbone, items, tf, "cpu", "test")
    (path,) = (tmp_path / "features").glob("*.safetensors")
    assert first.shape == (3, 1, tiny_backbone.clip.visual.output_dim)
    monkeypatch.setattr(features, "extract", lambda *a, **k: (_ for _ in ()).throw(AssertionError("extracted")))
    torch.testing.assert_close(features.image_features(tiny_backbone, items, tf, "cpu", "test"), first)
    with safe_open(str(path), framework="pt") as f:  # a safetensors file (nothing to unpickle)
        assert list(f.keys()) == ["features"]


def test_random_weights_are_never_cached(tiny_backbone, tmp_path, monkeypatch):
    monkeypatch.setenv("DRA_CACHE_DIR", str(tmp_path))
    tiny_backbone.info["pretrained"] = None
    features.image_features(tiny_backbone, build_dataset("shapes").train[:2], build_transforms(False, 32), "cpu", "t")
    assert not (tmp_path / "features").exists()


def test_the_cache_key_follows_the_weights_content_and_the_images(tiny_backbone, tmp_path, monkeypatch):
    monkeypatch.setenv("DRA_CACHE_DIR", str(tmp_path / "cache"))
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"first")
    tiny_backbone.info["pretrained"] = str(weights)
    items = build_dataset("shapes").train[:2]
    first = features.cache_key(tiny_backbone, items, "t")
    assert features.cache_key(tiny_backbone, items, "t") == first
    weights.write_bytes(b"second, overwritten in place")  # same path, other weights
    assert features.cache_key(tiny_backbone, items, "t") != first
    tiny_backbone.info["pretrained"] = "random"
    assert features.cache_key(tiny_backbone, items, "t") is None
