"""Nothing dra reads from disk is unpickled with code: a malicious pickle planted in every place dra
reads a file (resume state, adapter checkpoint, --pretrained, the checkpoint JSON's `pretrained`)
writes no marker, and each case ends as one `error:` line."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY
from dra.backbones import BackboneError, load_backbone
from dra.checkpoints import CheckpointError, load_model, save_adapters
from dra.data import build_dataset, build_transforms, fewshot, subsample_classes
from dra.engine.trainer import RESUME_FILE, TrainSettings, fit
from dra.methods import build_method
from safety_helpers import invoke, one_error_line, write_evil

TF = (build_transforms(True, 32), build_transforms(False, 32))


@pytest.fixture(scope="module")
def shapes_base():
    return subsample_classes(fewshot(build_dataset("shapes"), 2, seed=1), "base")


def tiny_model(classnames):
    torch.manual_seed(0)
    return build_method("dra", load_backbone(TINY), classnames)


@pytest.mark.parametrize("how", ["torch", "pickle"])
def test_old_format_last_pt_is_refused_not_unpickled(tmp_path, shapes_base, how):
    marker = tmp_path / "marker"
    run = tmp_path / "run"
    write_evil(run / "last.pt", marker, how)
    with pytest.raises(CheckpointError) as e:
        fit(tiny_model(shapes_base.classnames), shapes_base.train, TF, TrainSettings(epochs=1, num_workers=0), run)
    assert not marker.exists()
    assert "older dra (a pickle)" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("how", ["torch", "pickle"])
def test_a_pickle_in_place_of_the_resume_state_is_a_one_line_error(tmp_path, shapes_base, how):
    marker = tmp_path / "marker"
    run = tmp_path / "run"
    write_evil(run / RESUME_FILE, marker, how)
    with pytest.raises(CheckpointError, match="unreadable or corrupt") as e:
        fit(tiny_model(shapes_base.classnames), shapes_base.train, TF, TrainSettings(epochs=1, num_workers=0), run)
    assert not marker.exists() and "\n" not in str(e.value)


def test_a_resume_state_with_missing_keys_is_a_one_line_error(tmp_path, shapes_base):
    from safetensors.torch import save_file

    run = tmp_path / "run"
    run.mkdir()
    save_file({"x": torch.zeros(1)}, str(run / RESUME_FILE), metadata={"dra_resume": json.dumps({"epoch": 1})})
    with pytest.raises(CheckpointError) as e:
        fit(tiny_model(shapes_base.classnames), shapes_base.train, TF, TrainSettings(epochs=1, num_workers=0), run)
    assert str(e.value) == (
        f"resume state {run / RESUME_FILE} lacks identity, history, optimizer, scheduler, "
        "scaler; delete it to start the run over"
    )


def test_the_resume_state_holds_no_pickle(tmp_path, shapes_base):
    run = tmp_path / "run"
    fit(tiny_model(shapes_base.classnames), shapes_base.train, TF, TrainSettings(epochs=1, num_workers=0), run)
    from safetensors import safe_open

    with safe_open(str(run / RESUME_FILE), "pt") as f:  # a plain safetensors file: tensors + JSON
        meta = json.loads(f.metadata()["dra_resume"])
    assert meta["epoch"] == 1 and {"identity", "optimizer", "scheduler", "scaler", "history"} <= set(meta)
    assert not (run / "last.pt").exists()


@pytest.mark.parametrize("how", ["torch", "pickle"])
def test_malicious_pretrained_file_on_the_command_line(tmp_path, how):
    marker = tmp_path / "marker"
    evil = write_evil(tmp_path / "weights.pt", marker, how)
    with pytest.raises(BackboneError):
        load_backbone(TINY, str(evil))
    assert not marker.exists()


def test_malicious_pretrained_via_cli_is_one_line(tmp_path):
    marker = tmp_path / "marker"
    evil = write_evil(tmp_path / "weights.pt", marker)
    out = tmp_path / "out"
    result = invoke(
        "base2new",
        "--dataset",
        "shapes",
        "--model",
        TINY,
        "--pretrained",
        evil,
        "--output",
        out,
        "--seeds",
        "1",
        "train.num_workers=0",
    )
    line = one_error_line(result)
    assert f"weights file {evil} is not a readable checkpoint" in line
    assert not marker.exists() and not out.exists()


def test_corrupt_pretrained_files_are_one_line(tmp_path):
    for name, data in (
        ("trunc.pt", b"PK\x03\x04garbage"),
        ("junk.bin", b"\x00\x01not a pickle"),
        ("bad.safetensors", b"{}{}"),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(BackboneError) as e:
            load_backbone(TINY, str(path))
        assert "\n" not in str(e.value) and str(path) in str(e.value)


def _tiny_checkpoint(tmp_path, shapes_base):
    model = tiny_model(shapes_base.classnames)
    return save_adapters(model, tmp_path / "ckpt" / "tiny")


@pytest.mark.parametrize("how", ["torch", "pickle"])
def test_malicious_pretrained_recorded_in_a_checkpoint_json(tmp_path, shapes_base, how):
    marker = tmp_path / "marker"
    evil = write_evil(tmp_path / "evil.pt", marker, how)
    weights = _tiny_checkpoint(tmp_path, shapes_base)
    meta_path = weights.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["pretrained"] = str(evil)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BackboneError):
        load_model(weights)
    line = one_error_line(invoke("eval", "--dataset", "shapes", "--checkpoint", weights, "--output", tmp_path / "o"))
    assert f"weights file {evil} is not a readable checkpoint" in line
    assert not marker.exists()


def test_a_pickle_in_place_of_the_adapter_checkpoint(tmp_path, shapes_base):
    marker = tmp_path / "marker"
    weights = _tiny_checkpoint(tmp_path, shapes_base)
    write_evil(weights, marker)  # the .safetensors is now a pickle; the JSON stays valid
    with pytest.raises(CheckpointError, match="unreadable or corrupt"):
        load_model(weights)
    line = one_error_line(invoke("eval", "--dataset", "shapes", "--checkpoint", weights, "--output", tmp_path / "o"))
    assert "is unreadable or corrupt" in line and not marker.exists()
