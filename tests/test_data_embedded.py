"""The embedded `shapes` dataset: deterministic, small, CoOp layout, read through the registry."""

from __future__ import annotations

import hashlib
import json

import pytest

from dra.data import (
    DATASETS,
    SHAPES_CLASSES,
    DataError,
    build_dataset,
    data_cache_dir,
    fewshot,
    make_shapes,
    subsample_classes,
)
from dra.data.generated.shapes import GENERATOR_VERSION
from dra.data.generated.write import MARKER
from dra.data.readers import read_split_file_dataset


def _digest(root):
    d = root / "shapes"
    return {
        p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes_root"))


def test_layout_split_file_and_counts(shapes_root):
    spec = DATASETS["shapes"]
    assert spec.reader is read_split_file_dataset  # the same reader as EuroSAT
    split = json.loads((shapes_root / "shapes" / "split_zhou_Shapes.json").read_text())
    assert {k: len(v) for k, v in split.items()} == {"train": 240, "val": 80, "test": 160}
    assert split["train"][0] == ["red_circle/red_circle_000.png", 0, "red circle"]
    ds = build_dataset("shapes", shapes_root)
    assert ds.classnames == [c for c, _, _ in SHAPES_CLASSES] and len(ds.classnames) >= 10
    assert min(sum(d.label == y for d in ds.train) for y in range(10)) >= 16
    assert ds.image_dir == shapes_root / "shapes" / "images"
    fs = fewshot(ds, 16, 1)
    assert (len(fs.train), len(fs.val), len(fs.test)) == (160, 40, 160)
    base, new = subsample_classes(fs, "base"), subsample_classes(fs, "new")
    assert len(base.classnames) == 5 and len(new.classnames) == 5 and len(base.train) == 80


def test_deterministic(shapes_root, tmp_path):
    other = make_shapes(tmp_path)
    assert _digest(other) == _digest(shapes_root)
    assert (tmp_path / "shapes" / MARKER).read_text().strip() == GENERATOR_VERSION
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".shapes-")]  # no temp folders left


def test_no_data_root_generates_into_the_cache(monkeypatch, tmp_path, shapes_root):
    monkeypatch.setenv("DRA_CACHE_DIR", str(tmp_path / "cache"))
    assert data_cache_dir() == tmp_path / "cache" / "data"
    ds = build_dataset("shapes", None)
    assert ds.image_dir == tmp_path / "cache" / "data" / "shapes" / "images"
    assert len(ds.train) == 240
    mtime = (ds.image_dir.parent / "split_zhou_Shapes.json").stat().st_mtime_ns
    build_dataset("shapes")  # second call reuses the copy
    assert (ds.image_dir.parent / "split_zhou_Shapes.json").stat().st_mtime_ns == mtime


def test_stale_copy_is_regenerated(tmp_path, shapes_root):
    make_shapes(tmp_path)
    (tmp_path / "shapes" / MARKER).write_text("shapes-v0\n")
    (tmp_path / "shapes" / "images" / "red_circle" / "red_circle_000.png").write_bytes(b"junk")
    make_shapes(tmp_path)
    assert _digest(tmp_path) == _digest(shapes_root)


def test_explicit_data_root_without_shapes_is_an_error(tmp_path):
    with pytest.raises(DataError) as e:
        build_dataset("shapes", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "shapes") in msg and "make-shapes" in msg and "docs/datasets.md" in msg
