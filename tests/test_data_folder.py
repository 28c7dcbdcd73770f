"""Image-folder datasets (a user's own classes): read, split, drawn, checked and trained like the built-ins.

The folder trees are built under tmp_path from real EuroSAT images (../shared/data; the tests skip,
naming the path, without it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import TINY, shared_eurosat
from dra.cli import app, expand_variadic
from dra.data import build_dataset, fewshot, subsample_classes
from dra.data.folder import folder_dataset_name, split_class

pytestmark = pytest.mark.shared_data
CLASSES = {"AnnualCrop": 12, "Forest": 10, "Herbaceous_Vegetation": 7, "SeaLake": 3}


def make_tree(root: Path, classes=CLASSES) -> Path:
    """`root/<class>/<files>` with real EuroSAT jpgs (the folder's own name as class folder name)."""
    src = shared_eurosat() / "2750"
    for folder, n in classes.items():
        source = src / folder.replace("_", "")
        files = sorted(source.iterdir())[:n]
        (root / folder).mkdir(parents=True)
        for f in files:
            shutil.copyfile(f, root / folder / f.name)
    (root / "AnnualCrop" / "notes.txt").write_text("not an image")  # ignored: not an image extension
    return root


def listing(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_classes_names_and_the_deterministic_50_20_30_split(tmp_path):
    root = make_tree(tmp_path / "my data")
    before = listing(root)
    ds = build_dataset(str(root))
    assert ds.classnames == ["AnnualCrop", "Forest", "Herbaceous Vegetation", "SeaLake"]
    per = {
        c: [len([d for d in getattr(ds, k) if d.classname == c]) for k in ("train", "val", "test")]
        for c in ds.classnames
    }
    # CoOp's read_and_split_data: round(0.5 n) train, round(0.2 n) val, the rest test
    assert per == {
        "AnnualCrop": [6, 2, 4],
        "Forest": [5, 2, 3],
        "Herbaceous Vegetation": [4, 1, 2],
        "SeaLake": [2, 1, 0],
    }
    assert not any(d.impath.endswith(".txt") for d in ds.train + ds.val + ds.test)
    assert ds.name == folder_dataset_name(root) and ds.name.startswith("my_data-") and len(ds.name) == 16
    # deterministic and independent of where the folder lives (the seed comes from a fixed string + class)
    again = build_dataset(root)
    assert [d.impath for d in again.train] == [d.impath for d in ds.train]
    moved = shutil.copytree(root, tmp_path / "elsewhere")
    rel = lambda splits: [(Path(d.impath).relative_to(splits.image_dir).as_posix(), d.label) for d in splits.train]  # noqa: E731
    assert rel(build_dataset(moved)) == rel(ds) and build_dataset(moved).name != ds.name
    # the split of one class depends on its files only: a new class changes nothing else
    (root / "ZZ_new").mkdir()
    shutil.copyfile(next((root / "Forest").iterdir()), root / "ZZ_new" / "a.jpg")
    grown = build_dataset(root)
    assert [d.impath for d in grown.train if d.label < 4] == [d.impath for d in ds.train]
    assert grown.classnames[-1] == "ZZ new"
    (root / "ZZ_new" / "a.jpg").unlink()
    (root / "ZZ_new").rmdir()
    assert listing(root) == before  # nothing written into the data folder
    files = [f"{i}.jpg" for i in range(10)]
    assert split_class(files, "x") == split_class(files[::-1], "x")  # the listing order does not matter


def test_classnames_file_split_file_fewshot_and_base_new(tmp_path):
    root = make_tree(tmp_path / "d")
    (root / "classnames.txt").write_text("AnnualCrop annual crop land\nSeaLake sea or lake\n")
    ds = build_dataset(root)
    assert ds.classnames == ["annual crop land", "Forest", "Herbaceous Vegetation", "sea or lake"]
    few = fewshot(ds, 3, seed=1)
    assert [sum(d.label == c for d in few.train) for c in range(4)] == [3, 3, 3, 2]
    assert fewshot(ds, 3, seed=1).train == few.train and fewshot(ds, 3, seed=2).train != few.train
    base, new = subsample_classes(few, "base"), subsample_classes(few, "new")
    assert base.classnames == ["annual crop land", "Forest"]
    assert new.classnames == ["Herbaceous Vegetation", "sea or lake"]
    # a CoOp split file, paths relative to the dataset folder (a dataset needs at least 2 classes)
    files = sorted(p.relative_to(root).as_posix() for p in (root / "Forest").iterdir())
    lake = sorted(p.relative_to(root).as_posix() for p in (root / "SeaLake").iterdir())
    split = {
        "train": [[files[0], 0, "forest"], [files[1], 0, "forest"], [lake[0], 1, "lake"]],
        "val": [[files[2], 0, "forest"]],
        "test": [[files[3], 0, "forest"], [lake[1], 1, "lake"]],
    }
    split_path = tmp_path / "split.json"
    split_path.write_text(json.dumps(split))
    by_file = build_dataset(root, split=split_path)
    got = (len(by_file.train), len(by_file.val), len(by_file.test), by_file.classnames)
    assert got == (3, 1, 2, ["forest", "lake"])
    assert by_file.train[0].impath == str(root / files[0])
    assert by_file.name != ds.name  # another split, another run folder


def _cli(*args):
    return CliRunner().invoke(app, expand_variadic([str(a) for a in args]))


def test_data_check_reports_counts_unreadable_images_and_short_classes(tmp_path):
    root = make_tree(tmp_path / "d")
    ok = _cli("data", "check", root, "--shots", 5)
    assert ok.exit_code == 0, ok.output
    assert "train       17" in ok.stdout and "Herbaceous Vegetation" in ok.stdout
    assert "SeaLake: 2" in ok.stdout and "2 of 4 classes have fewer than 5 training images" in ok.stdout
    assert "decoded     32 opened, 32 ok, 0 bad" in ok.stdout  # folders are decoded by default
    (root / "Forest" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    bad = _cli("data", "check", root)
    assert bad.exit_code == 1 and "broken.jpg" in bad.stdout and "1 unreadable" in bad.stderr
    missing = _cli("data", "check", tmp_path / "nope")
    assert missing.exit_code == 1 and "no such folder" in missing.stderr
    few = _cli("data", "fewshot", "-d", root, "--shots", 2, "--seed", 1)
    assert few.exit_code == 0 and len(json.loads(few.stdout)["train"]) == 8  # 2 per class


def test_train_and_eval_on_a_folder(tmp_path):
    root = make_tree(tmp_path / "my data")
    out = tmp_path / "runs"
    res = _cli(
        "train",
        "--dataset",
        root,
        "--model",
        TINY,
        "--pretrained",
        "none",
        "--shots",
        2,
        "--output",
        out,
        "train.epochs=1",
        "train.batch_size=4",
        "train.num_workers=0",
    )
    assert res.exit_code == 0, res.output
    run = json.loads(res.stdout)
    assert f"/{folder_dataset_name(root)}-all/seed1" in run["run_dir"] and run["classes"] == 4
    ev = _cli("eval", "--dataset", root, "--checkpoint", run["checkpoint"], "eval.num_workers=0", "--output", out)
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.stdout)["total"] == 9  # the test part: 4 + 3 + 2 + 0
