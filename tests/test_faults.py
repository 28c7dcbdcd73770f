"""Faults end clean: a NaN loss stops training with one line and keeps the last good epoch; unwritable
or full outputs fail first with one line; worker errors name the file; a run folder is locked; early
failures leave nothing; orphaned temp files go; evaluation results are keyed by evaluation settings;
text features follow the weights; loading a backbone leaves the user's logging and open_clip alone."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys

import pytest
import torch
from filelock import FileLock

from conftest import TINY
from dra.backbones import load_backbone
from dra.data import DataError, build_dataset, build_transforms, fewshot, subsample_classes
from dra.engine import trainer
from dra.engine.resume import read_resume_state
from dra.engine.trainer import RESUME_FILE, RunBusyError, TrainingDivergedError, TrainSettings, fit
from dra.methods import build_method
from safety_helpers import one_error_line, shapes_base2new

TF = (build_transforms(True, 32), build_transforms(False, 32))
FAST = dict(num_workers=0, batch_size=4)


@pytest.fixture(scope="module")
def shapes_base():
    return subsample_classes(fewshot(build_dataset("shapes"), 2, seed=1), "base")


def tiny_model(classnames):
    torch.manual_seed(0)
    return build_method("dra", load_backbone(TINY), classnames)


# -- a non-finite loss ------------------------------------------------------------------------------
def nan_from_epoch(model, epoch_calls: int):
    """model.loss returns NaN after `epoch_calls` calls (one call per step)."""
    real, calls = model.loss, {"n": 0}

    def loss(logits, labels):
        calls["n"] += 1
        total, parts = real(logits, labels)
        if calls["n"] > epoch_calls:
            total = total * float("nan")
            parts = {**parts, "ce": parts["ce"] * float("nan")}
        return total, parts

    model.loss = loss


def test_a_nan_loss_stops_at_once_and_keeps_the_last_good_epoch(tmp_path, shapes_base):
    model = tiny_model(shapes_base.classnames)
    steps = len(shapes_base.train) // 4
    nan_from_epoch(model, steps)  # epoch 1 is fine, epoch 2's first step is NaN
    with pytest.raises(TrainingDivergedError) as e:
        fit(model, shapes_base.train, TF, TrainSettings(epochs=3, **FAST), tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"training diverged: non-finite loss at epoch 2/3 step 1/{steps} (ce nan, reg_image ")
    assert "epoch 1's checkpoint stays the resumable state" in msg
    meta, tensors = read_resume_state(tmp_path / RESUME_FILE)
    assert meta["epoch"] == 1 and all(torch.isfinite(t).all() for t in tensors.values())
    assert json.loads((tmp_path / "adapters.json").read_text())["epoch"] == 1


def test_lr_1e6_via_the_cli_is_one_line_and_no_result(tmp_path):
    out = tmp_path / "out"
    line = one_error_line(shapes_base2new(out, "--shots", "8", "train.lr=1e6"))
    assert line.startswith("error: training diverged: non-finite loss at epoch 1/1 step ")
    assert not list(out.rglob("result*.json")) and not list(out.rglob("*.md"))


def test_json_results_never_hold_nan(tmp_path):
    from dra.protocols.experiment import write_json

    with pytest.raises(ValueError):
        write_json(tmp_path / "r.json", {"accuracy": float("nan")})
    assert not (tmp_path / "r.json").exists()


# -- outputs ----------------------------------------------------------------------------------------
def test_output_under_a_regular_file_fails_first_with_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = one_error_line(shapes_base2new(blocker / "out"))
    assert line == f"error: output {blocker / 'out'} cannot be created: {blocker} is a file, not a folder"


def test_a_read_only_output_fails_before_any_training(tmp_path, monkeypatch):
    import os

    if os.geteuid() == 0:  # root writes anywhere: stand in for the read-only folder with a failing probe
        import tempfile

        def refuse(*a, **k):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    else:
        tmp_path.chmod(0o500)
    monkeypatch.setattr(trainer, "_fit", lambda *a, **k: pytest.fail("trained on a read-only output"))
    line = one_error_line(shapes_base2new(tmp_path / "out"))
    tmp_path.chmod(0o700)
    assert line.startswith(f"error: output {tmp_path / 'out'} is not writable (PermissionError: ")


@pytest.mark.parametrize(
    "exc",
    [
        OSError(28, "No space left on device"),
        RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64\n..."),
    ],
)
def test_a_full_disk_is_one_line(tmp_path, monkeypatch, exc):
    import safetensors.torch

    def full(*a, **k):
        raise exc

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    monkeypatch.setattr("dra.checkpoints.format.save_file", full)
    line = one_error_line(shapes_base2new(tmp_path / "out"))
    assert line.startswith("error: cannot write ") and "adapters.safetensors" in line
    assert type(exc).__name__ in line
    assert not list((tmp_path / "out").rglob("*.tmp"))


# -- data -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 1, 2])
def test_a_bad_image_is_named_with_any_number_of_workers(tmp_path, shapes_base, workers):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    items = [dataclasses.replace(d, impath=str(bad)) for d in shapes_base.train]
    run = tmp_path / "fresh" / "run"
    with pytest.raises(DataError) as e:
        fit(
            tiny_model(shapes_base.classnames),
            items,
            TF,
            TrainSettings(epochs=1, num_workers=workers, batch_size=4),
            run,
        )
    assert str(e.value).startswith(f"cannot read image {bad} (")
    assert "train.skip_bad_images=true" in str(e.value)
    assert not (tmp_path / "fresh").exists()  # an early failure leaves no folder, no train.log


# -- run folders --------------------------------------------------------------------------------------
def test_a_locked_run_folder_is_refused_and_left_alone(tmp_path, shapes_base):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.log").write_text("the other process's log\n")
    with FileLock(str(run / ".lock")):
        with pytest.raises(RunBusyError, match="is in use by another dra process"):
            fit(tiny_model(shapes_base.classnames), shapes_base.train, TF, TrainSettings(epochs=1, **FAST), run)
        assert (run / "train.log").read_text() == "the other process's log\n"


def test_two_identical_commands_on_one_output(tmp_path, monkeypatch):

    out = tmp_path / "out"
    shapes_base2new(out)  # find the run folder, then hold its lock as a running twin would
    run_dir = next(out.rglob("seed1"))
    for p in run_dir.glob("result*.json"):
        p.unlink()
    (run_dir / RESUME_FILE).unlink()
    with FileLock(str(run_dir / ".lock")):
        line = one_error_line(shapes_base2new(out))
    assert f"error: {run_dir} is in use by another dra process" in line


def test_the_log_handler_is_detached_when_fit_raises(tmp_path, shapes_base):
    log = logging.getLogger("dra.train")
    before = list(log.handlers)
    model = tiny_model(shapes_base.classnames)
    nan_from_epoch(model, 0)
    with pytest.raises(TrainingDivergedError):
        fit(model, shapes_base.train, TF, TrainSettings(epochs=1, **FAST), tmp_path / "r")
    assert log.handlers == before


def test_orphaned_temp_files_are_removed_on_the_next_run(tmp_path, shapes_base):
    run = tmp_path / "run"
    run.mkdir()
    orphan = run / ".last.safetensors.abc123.tmp"
    orphan.write_bytes(b"half")
    fit(tiny_model(shapes_base.classnames), shapes_base.train, TF, TrainSettings(epochs=1, **FAST), run)
    assert not orphan.exists() and not list(run.glob("*.tmp"))
    assert oct((run / "adapters.safetensors").stat().st_mode & 0o777) != oct(0o600)


def test_a_finished_run_is_evaluated_again_for_other_evaluation_settings(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert shapes_base2new(out).exit_code == 0  # test_per_class=2
    monkeypatch.setattr(trainer, "_end_of_epoch", lambda *a, **k: pytest.fail("a finished run was retrained"))
    assert shapes_base2new(out, "test_per_class=3").exit_code == 0
    run_dir = next(out.rglob("seed1"))
    two = json.loads((run_dir / "result-test_per_class2.json").read_text())
    three = json.loads((run_dir / "result-test_per_class3.json").read_text())
    assert (two["base_test"], three["base_test"]) == (10, 15)


# -- model state and global state -----------------------------------------------------------------------
def test_text_features_follow_weight_changes(shapes_base):
    model = tiny_model(shapes_base.classnames).eval()
    before = model.text_features().clone()
    state = {k: v * 50 for k, v in model.state_dict().items() if "adapter" in k and v.is_floating_point()}
    model.load_state_dict(state, strict=False)
    after_load = model.text_features().clone()
    assert not torch.allclose(before, after_load)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.mul_(0.5)
    assert not torch.allclose(after_load, model.text_features())


def test_loading_a_backbone_leaves_logging_and_open_clip_alone():
    code = """
import logging, open_clip
import dra.backbones
assert "ViT-Tiny-16-test" not in open_clip.list_models(), "registered at import"
root = logging.getLogger()
level, handlers = root.level, list(root.handlers)
from dra.backbones import load_backbone
load_backbone("ViT-Tiny-16-test")  # the model and its tokenizer
assert root.level == level and root.handlers == handlers, (root.level, root.handlers)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
