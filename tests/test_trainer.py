"""The training loop: per-epoch cosine, checkpoints each epoch, kill-and-resume equals uninterrupted."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY
from dra.backbones import load_backbone
from dra.data import build_dataset, build_transforms, fewshot, subsample_classes
from dra.engine import trainer
from dra.engine.trainer import RunMismatchError, TrainSettings, build_optimizer, fit
from dra.methods import build_method


@pytest.fixture(scope="module")
def shapes_base():
    return subsample_classes(fewshot(build_dataset("shapes"), 4, seed=1), "base")


def new_model(classnames, seed=0):
    """The same random backbone every time (it stands for pretrained weights); adapters from `seed`."""
    torch.manual_seed(0)
    backbone = load_backbone(TINY)
    torch.manual_seed(seed)
    return build_method("dra", backbone, classnames)


TF = (build_transforms(True, 32), build_transforms(False, 32))


def test_learning_rate_steps_once_per_epoch_on_a_cosine():
    p = torch.nn.Parameter(torch.zeros(1))
    s = TrainSettings(epochs=5, lr=0.0015)
    opt, sched = build_optimizer([p], s)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.0015 * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(5)])


def test_constant_warmup_then_recounted_cosine():
    p = torch.nn.Parameter(torch.zeros(1))
    opt, sched = build_optimizer([p], TrainSettings(epochs=4, lr=0.002, warmup_epochs=1, warmup_lr=1e-5))
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # Dassl (ConstantWarmupScheduler + WARMUP_RECOUNT, CosineAnnealingLR(T_max=MAX_EPOCH)): epoch k >= 1 runs at
    # lr (1 + cos(pi (k - 1) / E)) / 2 with E = 4, so the last epoch is at half the base lr, not near 0
    assert lrs[0] == pytest.approx(1e-5)
    assert lrs[1:] == pytest.approx([0.002 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(3)])


def test_per_iteration_cosine_to_a_final_lr():
    p = torch.nn.Parameter(torch.zeros(1))
    s = TrainSettings(lr=2e-4, schedule="iteration", iterations=8, final_lr=1e-6)
    opt, sched = build_optimizer([p], s, total_steps=8)
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1e-6 + (2e-4 - 1e-6) * (1 + math.cos(math.pi * i / 8)) / 2 for i in range(8)])
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-6)


def test_an_iteration_budget_plans_epochs_and_cuts_the_last():
    assert trainer.plan(TrainSettings(epochs=3), 5) == (3, 15)
    assert trainer.plan(TrainSettings(epochs=3, iterations=12), 5) == (3, 12)
    assert trainer.plan(TrainSettings(epochs=3, iterations=4), 5) == (1, 4)


def test_training_by_iterations_takes_exactly_the_budget(tmp_path, shapes_base):
    model = new_model(shapes_base.classnames)
    s = TrainSettings(iterations=5, schedule="iteration", final_lr=1e-6, num_workers=0, batch_size=8, lr=0.01)
    history = fit(model, shapes_base.train, TF, s, tmp_path)  # 20 images: 2 batches of 8 per epoch
    assert [h["images"] for h in history] == [16, 16, 8]  # 2 + 2 + 1 steps
    assert history[0]["lr"] == pytest.approx(0.01)
    assert history[2]["lr"] == pytest.approx(
        1e-6 + (0.01 - 1e-6) * (1 + math.cos(math.pi * 4 / 5)) / 2
    )  # its first step


def test_iterations_per_shot_becomes_the_budget():
    from dra.settings import load_settings, train_settings

    cfg = load_settings("base2new", {"shots": 4}, ["train.iterations_per_shot=500"])
    assert train_settings(cfg, 1).iterations == 2000


def test_checkpoint_each_epoch_and_a_log_file(tmp_path, shapes_base):
    model = new_model(shapes_base.classnames)
    history = fit(model, shapes_base.train, TF, TrainSettings(epochs=2, num_workers=0, batch_size=8), tmp_path)
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0]["images"] == 16  # 5 base classes x 4 shots = 20 images, the partial batch dropped
    assert {"adapters.safetensors", "adapters.json", "last.safetensors", "train.log"} <= {
        p.name for p in tmp_path.iterdir()
    }
    log = (tmp_path / "train.log").read_text()
    assert "epoch 2/2" in log and "img/s" in log and "eta" in log
    assert not list(tmp_path.glob("*.tmp"))


def test_killed_run_resumes_to_the_same_final_checkpoint(tmp_path, shapes_base, monkeypatch):
    settings = TrainSettings(epochs=3, num_workers=0, batch_size=8)
    fit(new_model(shapes_base.classnames), shapes_base.train, TF, settings, tmp_path / "straight")

    real_end = trainer._end_of_epoch

    def killed_after_first_epoch(model, run_dir, epoch, *args):
        real_end(model, run_dir, epoch, *args)
        if epoch == 1:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(trainer, "_end_of_epoch", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(new_model(shapes_base.classnames), shapes_base.train, TF, settings, tmp_path / "killed")
    monkeypatch.setattr(trainer, "_end_of_epoch", real_end)
    history = fit(new_model(shapes_base.classnames, seed=99), shapes_base.train, TF, settings, tmp_path / "killed")
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert "resuming" in (tmp_path / "killed" / "train.log").read_text()
    a = load_file(str(tmp_path / "straight" / "adapters.safetensors"))
    b = load_file(str(tmp_path / "killed" / "adapters.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_folder_of_other_settings_is_refused(tmp_path, shapes_base):
    fit(new_model(shapes_base.classnames), shapes_base.train, TF, TrainSettings(epochs=1, num_workers=0), tmp_path)
    with pytest.raises(RunMismatchError, match="holds a run with other settings"):
        fit(
            new_model(shapes_base.classnames),
            shapes_base.train,
            TF,
            TrainSettings(epochs=1, num_workers=0, lr=0.1),
            tmp_path,
        )


def test_skip_bad_images_logs_and_keeps_training(tmp_path, shapes_base, caplog):
    import dataclasses
    from pathlib import Path

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    items = [dataclasses.replace(shapes_base.train[0], impath=str(bad)), *shapes_base.train[1:]]
    from dra.data import DataError

    with pytest.raises(DataError, match="broken.png"):
        fit(new_model(shapes_base.classnames), items, TF, TrainSettings(epochs=1, num_workers=0), tmp_path / "a")
    with caplog.at_level("WARNING"):
        fit(
            new_model(shapes_base.classnames),
            items,
            TF,
            TrainSettings(epochs=1, num_workers=0, skip_bad_images=True),
            tmp_path / "b",
        )
    assert any("broken.png" in r.getMessage() for r in caplog.records)
    assert Path(tmp_path / "b" / "adapters.safetensors").is_file()
