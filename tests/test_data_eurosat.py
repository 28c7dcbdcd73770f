"""The real EuroSAT of ../shared/data: CoOp's counts, Dassl's draw, base/new sizes."""

from __future__ import annotations

import json
import os

import pytest

from data_fixtures import SHARED_DATA, requires_eurosat
from dra.data import DATASETS, ImageDataset, build_dataset, build_transforms, fewshot, subsample_classes

pytestmark = [requires_eurosat, pytest.mark.shared_data]

ANCHOR = ["AnnualCrop_2365", "AnnualCrop_93", "AnnualCrop_2552", "AnnualCrop_2426", "AnnualCrop_2106"]


@pytest.fixture(scope="module")
def eurosat():
    return build_dataset("eurosat", SHARED_DATA)


def test_counts_and_classes(eurosat):
    assert (len(eurosat.train), len(eurosat.val), len(eurosat.test)) == (13500, 5400, 8100)
    assert (len(eurosat.train), len(eurosat.val), len(eurosat.test)) == DATASETS["eurosat"].expected_counts
    assert len(eurosat.classnames) == 10
    assert eurosat.classnames[0] == "Annual Crop Land"  # CoOp's renamed classes, from the split file
    assert eurosat.image_dir == SHARED_DATA / "eurosat" / "2750"
    assert all(os.path.isabs(d.impath) for d in eurosat.train[:10])


def test_anchor_seed_1_16_shots(eurosat):
    fs = fewshot(eurosat, 16, 1)
    assert [eurosat.relpath(d) for d in fs.train[:5]] == [f"AnnualCrop/{n}.jpg" for n in ANCHOR]
    assert (len(fs.train), len(fs.val), len(fs.test)) == (160, 40, 8100)
    per_class = [sum(d.label == y for d in fs.train) for y in range(10)]
    assert per_class == [16] * 10
    assert all(os.path.isfile(d.impath) for d in fs.train + fs.val)


def test_seeds_give_other_draws(eurosat):
    draws = [tuple(d.impath for d in fewshot(eurosat, 16, s).train) for s in (1, 2, 3)]
    assert len(set(draws)) == 3


def test_base_and_new(eurosat):
    fs = fewshot(eurosat, 16, 1)
    base, new = subsample_classes(fs, "base"), subsample_classes(fs, "new")
    assert len(base.classnames) == 5 and len(new.classnames) == 5
    assert (len(base.train), len(base.val), len(base.test)) == (80, 20, 4200)
    assert (len(new.train), len(new.val), len(new.test)) == (80, 20, 3900)
    assert base.classnames == eurosat.classnames[:5] and new.classnames == eurosat.classnames[5:]
    assert {d.label for d in new.test} == set(range(5))
    assert [d.impath for d in base.train] == [d.impath for d in fs.train[:80]]


def test_cli_fewshot_json(eurosat):
    from typer.testing import CliRunner

    from dra.cli import app

    res = CliRunner().invoke(
        app,
        [
            "data",
            "fewshot",
            "--dataset",
            "eurosat",
            "--data-root",
            str(SHARED_DATA),
            "--shots",
            "16",
            "--seed",
            "1",
            "--subsample",
            "base",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == {"train", "val", "test", "classnames"}
    assert [e[0] for e in out["train"][:5]] == [f"AnnualCrop/{n}.jpg" for n in ANCHOR]
    assert out["train"][0][1:] == [0, "Annual Crop Land"]
    assert (len(out["train"]), len(out["val"]), len(out["test"]), len(out["classnames"])) == (80, 20, 4200, 5)


def test_a_few_images_load_through_the_test_transform(eurosat):
    ds = ImageDataset(fewshot(eurosat, 1, 1).train, build_transforms(train=False))
    x, y = ds[3]
    assert tuple(x.shape) == (3, 224, 224) and y == 3
