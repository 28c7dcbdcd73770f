"""Base-to-new end to end on the embedded shapes set (and the real EuroSAT where ../shared/data is present):
tables, reuse, determinism."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import SHARED_DATA, TINY, shared_eurosat
from dra.protocols import base2new
from dra.settings import load_settings

QUICK = ["train.epochs=1", "train.num_workers=0", "eval.num_workers=0", "eval.batch_size=50", "test_per_class=5"]


def settings(tmp_path, *extra, dataset="shapes", **values):
    """The shapes set needs no data root (it is generated into the data cache); EuroSAT reads the shared copy."""
    data_root = None
    if dataset == "eurosat":
        shared_eurosat()
        data_root = str(SHARED_DATA)
    base = {
        "model": TINY,
        "datasets": [dataset],
        "seeds": [1],
        "shots": 2,
        "data_root": data_root,
        "output": str(tmp_path),
    }
    cfg = load_settings("base2new", {**base, **values}, [*QUICK, *extra])
    cfg.pretrained = None
    return cfg


@pytest.mark.parametrize(
    "dataset, title", [("shapes", "Shapes"), pytest.param("eurosat", "EuroSAT", marks=pytest.mark.shared_data)]
)
def test_base2new_writes_the_table_with_consistent_harmonic_means(tmp_path, dataset, title):
    lines = []
    out = base2new.run(settings(tmp_path, seeds=[1, 2], dataset=dataset), echo=lines.append)
    records = out["records"]
    assert [(r["dataset"], r["seed"]) for r in records] == [(dataset, 1), (dataset, 2)]
    for r in records:
        assert r["base_classes"] == 5 and r["new_classes"] == 5
        assert r["train_images"] == 10 and r["base_test"] == 25 and r["new_test"] == 25
        assert r["hm"] == pytest.approx(2 * r["base"] * r["new"] / (r["base"] + r["new"]))
    folder = out["output"]
    for suffix in ("md", "csv", "json", "png"):
        assert (folder / f"base2new.{suffix}").stat().st_size > 0
    rows = json.loads((folder / "base2new.json").read_text())["rows"]
    assert [row["Dataset"] for row in rows] == [title, "Average"]
    b = sum(r["base"] for r in records) / 2
    n = sum(r["new"] for r in records) / 2
    for row in rows:
        assert row["Base"] == pytest.approx(b) and row["New"] == pytest.approx(n)
        assert row["HM"] == pytest.approx(2 * b * n / (b + n))
    md = (folder / "base2new.md").read_text()
    assert title in md and "Average" in md
    assert any(title in line and "Average" in line for line in lines)  # the terminal table


def test_finished_runs_are_reused_not_redone(tmp_path, monkeypatch):
    first = base2new.run(settings(tmp_path), echo=lambda *_: None)["records"][0]
    import dra.protocols.experiment as experiment

    monkeypatch.setattr(experiment, "fit", lambda *a, **k: pytest.fail("a finished run was trained again"))
    monkeypatch.setattr(experiment, "evaluate", lambda *a, **k: pytest.fail("a finished run was evaluated again"))
    again = base2new.run(settings(tmp_path), echo=lambda *_: None)["records"][0]
    assert again == first


def test_same_seed_same_numbers_and_weights(tmp_path):
    a = base2new.run(settings(tmp_path / "a"), echo=lambda *_: None)
    b = base2new.run(settings(tmp_path / "b"), echo=lambda *_: None)
    ra, rb = a["records"][0], b["records"][0]
    assert (ra["base"], ra["new"], ra["history"][0]["loss"]) == (rb["base"], rb["new"], rb["history"][0]["loss"])
    wa = load_file(str(next((tmp_path / "a").rglob("adapters.safetensors"))))
    wb = load_file(str(next((tmp_path / "b").rglob("adapters.safetensors"))))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_zero_shot_method_runs_without_training(tmp_path):
    out = base2new.run(settings(tmp_path, method="zeroshot"), echo=lambda *_: None)
    r = out["records"][0]
    assert r["history"] == [] and not list(tmp_path.rglob("adapters.safetensors"))
    assert 0 <= r["base"] <= 100


def test_zero_shot_is_evaluated_once_for_all_seeds(tmp_path, monkeypatch):
    """Zero-shot learns nothing (`MethodSpec.seed_free`): seeds 2 and 3 take seed 1's result without evaluating
    again, each recording its own seed and training draw; a second run reuses all three as they are."""
    import dra.protocols.experiment as experiment

    calls = []
    real = experiment.evaluate
    monkeypatch.setattr(experiment, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = settings(tmp_path, method="zeroshot", seeds=[1, 2, 3])
    first = base2new.run(cfg, echo=lambda *_: None)["records"]
    assert len(calls) == 2  # seed 1's base and new
    assert [(r["seed"], r.get("same_as_seed")) for r in first] == [(1, None), (2, 1), (3, 1)]
    assert all((r["base"], r["new"]) == (first[0]["base"], first[0]["new"]) for r in first)
    assert len({json.dumps(r["inputs"]["data"]) for r in first}) == 3  # each seed's own draw is recorded
    saved = json.loads(next(tmp_path.rglob("seed3/result*.json")).read_text())
    assert saved["seed"] == 3 and saved["inputs"] == first[2]["inputs"]
    assert base2new.run(cfg, echo=lambda *_: None)["records"] == first and len(calls) == 2
    base2new.run(settings(tmp_path / "trained", seeds=[1, 2]), echo=lambda *_: None)
    assert len(calls) == 6  # a method that trains is evaluated for every seed


def test_dataset_overrides_apply_per_dataset(tmp_path):
    from dra.settings import for_dataset, train_settings

    cfg = load_settings("base2new")
    assert train_settings(for_dataset(cfg, "imagenet"), 1).batch_size == 128
    assert train_settings(for_dataset(cfg, "eurosat"), 1).batch_size == 16
    assert cfg.train.lr == 0.0015 and cfg.train.epochs == 5 and cfg.dra.start_layer == 5
    xd = load_settings("cross_dataset")
    assert (xd.dra.start_layer, xd.train.epochs, xd.train.batch_size) == (7, 1, 128)
    assert list(load_settings("domain_gen").targets) == ["imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"]
