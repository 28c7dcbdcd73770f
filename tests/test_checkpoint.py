"""Adapter-only checkpoints: exact round trip, clear errors for checkpoints that do not fit."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file

import dra
from conftest import TINY, meta_backbone
from dra.backbones import load_backbone
from dra.checkpoints import CheckpointError, load_adapters, save_adapters
from dra.config import DRAConfig
from dra.methods import build_method


def trained_model(seed=0, **cfg):
    torch.manual_seed(seed)
    model = build_method("dra", load_backbone(TINY), ["cat", "dog", "bird"], DRAConfig(**cfg))
    with torch.no_grad():  # move the adapters away from their initialisation
        for p in model.trainable_parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_round_trip_onto_a_fresh_model_gives_identical_logits(tmp_path):
    model = trained_model().eval()
    images = torch.randn(3, 3, 32, 32)
    before = model(images)
    path = save_adapters(model, tmp_path / "run" / "adapters")
    assert path.name == "adapters.safetensors" and (tmp_path / "run" / "adapters.json").is_file()
    tensors = load_file(str(path))
    assert sum(t.numel() for t in tensors.values()) == 27_360  # the tiny model's DRA count (see test_efficiency)
    assert all(k.startswith("adapters.") for k in tensors)  # adapters only, no backbone weights

    torch.manual_seed(123)  # different adapter initialisation, same (seed-0) backbone weights
    backbone = load_backbone(TINY)
    fresh = build_method("dra", backbone, ["cat", "dog", "bird"]).eval()
    assert not torch.equal(fresh(images), before)
    load_adapters(fresh, path)
    assert torch.equal(fresh(images), before)


def test_load_model_rebuilds_method_and_config(tmp_path, monkeypatch):
    model = trained_model(rank=8, branches="image").eval()
    save_adapters(model, tmp_path / "ck")
    meta = json.loads((tmp_path / "ck.json").read_text())
    assert meta["method"] == "dra" and meta["model"] == TINY and meta["config"]["rank"] == 8
    assert meta["classnames"] == ["cat", "dog", "bird"] and meta["pretrained"] == "random"
    torch.manual_seed(0)  # same random backbone as trained_model(seed=0)
    again = dra.load_model(tmp_path / "ck.safetensors")
    assert again.config == model.config
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(again.eval()(images), model(images))


@pytest.mark.parametrize(
    "other, needle",
    [
        ({"rank": 16}, "config.rank: checkpoint 32 vs model 16"),
        ({"branches": "text"}, "config.branches"),
        ({"channel_response": False}, "config.channel_response"),
    ],
)
def test_checkpoint_of_another_config_is_refused_naming_both(tmp_path, other, needle):
    save_adapters(trained_model(), tmp_path / "ck")
    target = build_method("dra", load_backbone(TINY), ["a"], DRAConfig(**other))
    with pytest.raises(CheckpointError, match=needle.replace(".", r"\.")):
        load_adapters(target, tmp_path / "ck")


def test_checkpoint_of_another_backbone_or_method_is_refused(tmp_path):
    save_adapters(trained_model(), tmp_path / "ck")
    vit_b32 = meta_backbone("ViT-B-32")  # refused on its description: no weights needed
    with pytest.raises(CheckpointError, match=r"model: checkpoint 'ViT-Tiny-16-test' vs model 'ViT-B-32'"):
        load_adapters(build_method("dra", vit_b32, ["a"]), tmp_path / "ck")
    with pytest.raises(CheckpointError, match=r"method: checkpoint 'dra' vs model 'adapter'"):
        load_adapters(build_method("adapter", load_backbone(TINY), ["a"]), tmp_path / "ck")


def test_missing_and_corrupt_checkpoints_are_clear_errors(tmp_path):
    model = trained_model()
    with pytest.raises(CheckpointError, match="not found"):
        load_adapters(model, tmp_path / "nothing")
    path = save_adapters(model, tmp_path / "ck")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="unreadable or corrupt"):
        load_adapters(model, path)


def _half_then_raise(exc):
    """A safetensors writer that writes the first half of the real file, then fails (disk full, a kill)."""
    from safetensors.torch import save_file as real_save

    def write(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as f:
            f.truncate(len(f.read()) // 2)
        raise exc

    return write


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_save_interrupted_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch, exc):
    import dra.checkpoints.format as checkpoint

    old_model, new_model = trained_model(seed=0), trained_model(seed=1)
    save_adapters(old_model, tmp_path / "ck")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    monkeypatch.setattr(checkpoint, "save_file", _half_then_raise(exc))
    with pytest.raises(type(exc)):
        save_adapters(new_model, tmp_path / "ck")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # same files, same bytes, no temp file
    monkeypatch.undo()
    fresh = trained_model(seed=2)
    load_adapters(fresh, tmp_path / "ck")
    for k, v in fresh.adapter_state_dict().items():
        assert torch.equal(v, old_model.adapter_state_dict()[k]), k


def test_a_failing_rename_leaves_the_old_files_and_no_temp_file(tmp_path, monkeypatch):
    import dra.io

    save_adapters(trained_model(seed=0), tmp_path / "ck")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def refuse(src, dst):
        assert os.path.getsize(src) > 0  # the complete new file was written under a temp name
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(dra.io.os, "replace", refuse)
    with pytest.raises(OSError, match="cannot write .*ck.safetensors"):
        save_adapters(trained_model(seed=1), tmp_path / "ck")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_saved_files_get_ordinary_permissions(tmp_path):
    import os
    import stat

    save_adapters(trained_model(), tmp_path / "ck")
    mask = os.umask(0)
    os.umask(mask)
    for name in ("ck.json", "ck.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask


def test_a_pair_from_two_saves_is_refused(tmp_path, monkeypatch):
    """The weights are written, then the JSON: a save that fails between the two leaves new weights
    beside old metadata, which must not load as a checkpoint of the old settings."""
    import dra.checkpoints.format as checkpoint

    save_adapters(trained_model(seed=0, rank=8), tmp_path / "ck")
    monkeypatch.setattr(checkpoint, "atomic_write_text", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "full")))
    with pytest.raises(OSError):
        save_adapters(trained_model(seed=1, rank=16), tmp_path / "ck")
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="come from two different saves"):
        dra.load_model(tmp_path / "ck.safetensors")
