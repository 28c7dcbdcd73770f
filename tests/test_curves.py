"""Training curves: metrics.csv per step and per epoch (continued, not duplicated, after a resume),
TensorBoard events when tensorboard is installed, evaluation rows from the protocols, `dra plot`."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import TINY
from dra.backbones import load_backbone
from dra.cli import app
from dra.data import build_dataset, build_transforms, fewshot, subsample_classes
from dra.engine.metrics_log import read_metrics, tensorboard_available
from dra.engine.trainer import TrainSettings, fit
from dra.methods import build_method
from dra.protocols import base2new
from dra.settings import load_settings

TF = (build_transforms(True, 32), build_transforms(False, 32))


@pytest.fixture(scope="module")
def shapes_base():
    return subsample_classes(fewshot(build_dataset("shapes"), 4, seed=1), "base")


def new_model(classnames):
    torch.manual_seed(0)
    backbone = load_backbone(TINY)
    return build_method("dra", backbone, classnames)


SETTINGS = TrainSettings(epochs=3, num_workers=0, batch_size=4, log_every=2)  # 20 images: 5 steps per epoch


def key(rows):
    return [(r["kind"], r["epoch"], r.get("step"), r["global_step"]) for r in rows]


def test_metrics_csv_has_step_and_epoch_rows(tmp_path, shapes_base):
    fit(new_model(shapes_base.classnames), shapes_base.train, TF, SETTINGS, tmp_path)
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == [
        "kind",
        "epoch",
        "step",
        "global_step",
        "loss",
        "ce",
        "reg_image",
        "reg_text",
        "lr",
        "img_s",
        "seconds",
        "name",
        "accuracy",
    ]
    rows = read_metrics(tmp_path / "metrics.csv")
    steps = [r for r in rows if r["kind"] == "step"]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert [(r["epoch"], r["step"]) for r in steps] == [(e, s) for e in (1, 2, 3) for s in (1, 3, 5)]
    assert [r["global_step"] for r in epochs] == [5, 10, 15]
    assert all({"loss", "ce", "reg_image", "reg_text", "lr", "img_s"} <= set(r) for r in steps + epochs)
    assert epochs[0]["lr"] > epochs[2]["lr"]  # the cosine


def test_a_resumed_run_continues_the_csv_without_duplicates(tmp_path, shapes_base, monkeypatch):
    fit(new_model(shapes_base.classnames), shapes_base.train, TF, SETTINGS, tmp_path / "straight")
    model = new_model(shapes_base.classnames)
    calls = {"n": 0}
    real = type(model).loss

    def dies_in_epoch_2(self, logits, labels):
        calls["n"] += 1
        if calls["n"] == 9:  # epoch 2, step 4: rows of steps 1 and 3 of epoch 2 are written already
            raise KeyboardInterrupt("killed")
        return real(self, logits, labels)

    monkeypatch.setattr(type(model), "loss", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        fit(model, shapes_base.train, TF, SETTINGS, tmp_path / "killed")
    partial = read_metrics(tmp_path / "killed" / "metrics.csv")
    assert ("step", 2, 3, 8) in key(partial)
    monkeypatch.setattr(type(model), "loss", real)
    fit(new_model(shapes_base.classnames), shapes_base.train, TF, SETTINGS, tmp_path / "killed")
    a = read_metrics(tmp_path / "straight" / "metrics.csv")
    b = read_metrics(tmp_path / "killed" / "metrics.csv")
    assert key(a) == key(b)  # same rows, none twice
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-4)


@pytest.mark.skipif(not tensorboard_available(), reason="tensorboard is not installed (pip install 'dra[tensorboard]')")
def test_tensorboard_events_when_installed(tmp_path, shapes_base):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fit(new_model(shapes_base.classnames), shapes_base.train, TF, SETTINGS, tmp_path)
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/ce", "train/lr", "epoch/loss"} <= tags
    assert [e.step for e in acc.Scalars("epoch/loss")] == [1, 2, 3]


def test_base2new_logs_accuracy_and_dra_plot_draws_it(tmp_path):
    cfg = load_settings(
        "base2new",
        {"model": TINY, "datasets": ["shapes"], "seeds": [1], "shots": 2, "output": str(tmp_path)},
        ["train.epochs=2", "train.num_workers=0", "eval.num_workers=0", "test_per_class=2", "train.log_every=1"],
    )
    cfg.pretrained = None
    base2new.run(cfg, echo=lambda *_: None)
    run_dir = next(tmp_path.glob("base2new/dra-*/shapes/seed1"))
    rows = read_metrics(run_dir / "metrics.csv")
    evals = {r["name"]: r["accuracy"] for r in rows if r["kind"] == "eval"}
    assert set(evals) == {"base-test_per_class2", "new-test_per_class2"} and all(0 <= v <= 100 for v in evals.values())
    res = CliRunner().invoke(app, ["plot", str(run_dir)])
    assert res.exit_code == 0, res.output
    png = run_dir / "curves.png"
    assert res.stdout.strip() == str(png) and Image.open(png).size[0] > 600
    bad = CliRunner().invoke(app, ["plot", str(tmp_path)])
    assert bad.exit_code == 1 and "no metrics.csv in" in bad.stderr and "seed1" in bad.stderr
