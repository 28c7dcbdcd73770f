"""The compositional pocket tasks, the shortcut task and the dev draw (a simulation; issue #17, part 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dra.data import build_dataset
from dra.data.generated import compositional as C
from dra.data.generated import pocket as P
from dra.data.generated import world as W

SMALL = {"train": 3, "val": 1, "test": 4}  # images per class for the written copies here
TINY = {"train": 2, "val": 1, "test": 3}


def test_colour_shape_classes_and_split_are_exactly_these():
    spec = P.POCKET_DATASETS["pocket_colour_shape"]
    assert spec.base_classes == (
        "red circle",
        "red triangle",
        "red cross",
        "blue square",
        "blue star",
        "blue heart",
        "yellow circle",
        "yellow triangle",
        "yellow cross",
        "green square",
        "green star",
        "green heart",
    )
    assert spec.new_classes == (
        "red square",
        "red star",
        "red heart",
        "blue circle",
        "blue triangle",
        "blue cross",
        "yellow square",
        "yellow star",
        "yellow heart",
        "green circle",
        "green triangle",
        "green cross",
    )
    assert spec.classnames == spec.base_classes + spec.new_classes
    assert spec.per_class == {"train": 32, "val": 16, "test": 200} and spec.counts == (768, 384, 4800)


def test_the_new_registered_datasets_and_their_sizes():
    from dra.data.registry import DATASETS, POCKET_BENCHMARK

    assert POCKET_BENCHMARK[:5] == tuple(P.COMPOSITIONAL)  # the benchmark's first five (test_pocket_benchmark.py)
    sizes = {
        "pocket_colour_shape": (24, 12),
        "pocket_pattern_shape": (24, 12),
        "pocket_count_colour": (24, 12),
        "pocket_colour_scene": (30, 15),
        "pocket_shortcut": (16, 8),
    }
    assert set(P.COMPOSITIONAL) == set(sizes)
    for name, (n, n_base) in sizes.items():
        spec = P.POCKET_DATASETS[name]
        assert len(spec.classnames) == len(set(spec.classnames)) == n and len(spec.base_classes) == n_base
        assert spec.benchmark and DATASETS[name].num_classes == n and DATASETS[name].embedded
        assert DATASETS[name].expected_counts == (32 * n, 16 * n, 200 * n)
    assert C.COUNT_COLOUR.classnames[:3] == ("one red object", "one blue object", "one white object")
    assert "three purple objects" in C.COUNT_COLOUR.classnames
    assert C.COLOUR_SCENE.classnames[0] == "red object on a grass field"
    assert C.PATTERN_SHAPE.classnames[0] == "striped circle"
    # no two datasets (test draws) with the same classes and split
    splits = [(d.base_classes, d.new_classes) for d in P.POCKET_DATASETS.values()]
    duplicates = {s for s in splits if splits.count(s) > 1}
    assert duplicates == {(tuple(W.SCENES[:4]), tuple(W.SCENES[4:]))}  # pocket_scenes / pocket_dusk (shift datasets)


@pytest.mark.parametrize("name", sorted(P.COMPOSITIONAL))
def test_every_value_of_a_new_class_is_seen_in_base(name):
    comp, spec = P.COMPOSITIONAL[name], P.POCKET_DATASETS[name]
    combos = comp.combinations()
    base, new = combos[: len(spec.base_classes)], combos[len(spec.base_classes) :]
    assert new and not set(base) & set(new) and len(set(combos)) == len(combos)
    for k in (0, 1):
        assert {c[k] for c in new} <= {c[k] for c in base}, (name, comp.attributes[k])
        assert {c[k] for c in combos} == set(comp.values[k])
    # the images show the class's combination
    for label in (0, len(base) - 1, len(base), len(combos) - 1):
        for index in (0, 40):
            scene, _ = P.scene_item(name, label, index)
            assert (getattr(scene, comp.attributes[0]), getattr(scene, comp.attributes[1])) == combos[label]
            assert all(getattr(scene, f) == v for f, v in comp.fixed.items())


def test_shortcut_training_backgrounds_are_one_per_base_class_and_test_backgrounds_vary():
    spec = P.POCKET_DATASETS["pocket_shortcut"]
    n_base, counts = len(spec.base_classes), spec.per_class
    assert spec.shortcut and n_base == 8
    first_test, first_val = counts["train"] + counts["val"], counts["train"]
    for label in range(len(spec.classnames)):
        train = {P.scene_item("pocket_shortcut", label, i)[0].background for i in range(counts["train"])}
        val = {P.scene_item("pocket_shortcut", label, first_val + i)[0].background for i in range(counts["val"])}
        test = {P.scene_item("pocket_shortcut", label, first_test + i)[0].background for i in range(40)}
        if label < n_base:
            assert train == {C.SHORTCUT_BACKGROUNDS[label]}  # the shortcut
        else:
            assert len(train) >= 4  # new classes: never trained on, random backgrounds
        assert len(test) >= 5 and len(val) >= 3, label  # held-out images: random backgrounds
    assert len({C.SHORTCUT_BACKGROUNDS[k] for k in range(n_base)}) == n_base
    # the same holds in a small written copy (the split boundaries follow per_class)
    assert P.scene_item("pocket_shortcut", 2, 2, per_class=SMALL)[0].background == C.SHORTCUT_BACKGROUNDS[2]
    assert [spec.split_of(i, SMALL) for i in range(8)] == ["train"] * 3 + ["val"] + ["test"] * 4
    held_out = {
        P.scene_item("pocket_shortcut", k, i, per_class=SMALL)[0].background for k in range(8) for i in range(3, 8)
    }
    assert len(held_out) >= 5
    with pytest.raises(IndexError, match="image index 8 past the 8 images of a class"):
        spec.split_of(8, SMALL)


def test_dev_draw_same_classes_and_split_other_images(tmp_path):
    from dra.data import build_dataset
    from dra.data.registry import DATASETS, get_spec

    for name in P.POCKET_DATASETS:
        dev, test = DATASETS[f"{name}@dev"], DATASETS[name]
        assert dev.folder == f"{name}@dev" and dev.split_file == test.split_file
        assert (dev.num_classes, dev.expected_counts) == (test.num_classes, test.expected_counts)
        assert "dev draw" in dev.title and dev.embedded
    assert get_spec("PocketShortcut").name == "pocket_shortcut"  # CoOp-style names keep meaning the test draw
    a = np.asarray(P.render_item("pocket_colour_shape", 3, 7))
    b = np.asarray(P.render_item("pocket_colour_shape", 3, 7, draw="dev"))
    assert not np.array_equal(a, b)
    assert np.array_equal(
        np.asarray(P.render_item("pocket_dusk", 1, 2)), np.asarray(P.render_item("pocket_dusk", 1, 2))
    )
    with pytest.raises(ValueError, match="draw must be one of test, dev, not 'val'"):
        P.render_item("pocket_dusk", 1, 2, draw="val")

    P.make_pocket_dataset("pocket_shortcut", tmp_path / "t", per_class=SMALL)
    P.make_pocket_dataset("pocket_shortcut", tmp_path / "d", draw="dev", per_class=SMALL)
    t = build_dataset("pocket_shortcut", tmp_path / "t")
    d = build_dataset("pocket_shortcut@dev", tmp_path / "d")
    assert t.classnames == d.classnames == list(C.SHORTCUT.classnames)
    assert [x.label for x in t.train] == [x.label for x in d.train] and len(t.test) == 16 * 4
    with Image.open(t.test[0].impath) as x, Image.open(d.test[0].impath) as y:
        assert not np.array_equal(np.asarray(x.convert("RGB")), np.asarray(y.convert("RGB")))
    assert (tmp_path / "d" / "pocket_shortcut@dev" / "split_zhou_PocketShortcut.json").is_file()


def test_generation_is_deterministic(tmp_path):
    P.make_pocket_dataset("pocket_count_colour", tmp_path / "a", draw="dev", per_class=SMALL)
    P.make_pocket_dataset("pocket_count_colour", tmp_path / "b", draw="dev", per_class=SMALL)
    a, b = tmp_path / "a" / "pocket_count_colour@dev", tmp_path / "b" / "pocket_count_colour@dev"
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 24 * 8 + 2  # images, the split file, the marker
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert (a / ".complete").read_text().strip() == f"{P.VERSION}/{SMALL}"  # not taken for a full copy


def test_a_run_scoring_n_test_images_per_class_writes_only_those(tmp_path):
    """`test_per_class` (`dra demo`): the copy holds the first n test images of each class, the very files of
    the full copy (same train and val too); a copy with at least n is reused, a run that needs more writes more."""

    def first(items, n):
        return [d for d in items if [x.label for x in items[: items.index(d) + 1]].count(d.label) <= n]

    def listed(items, root):
        return [(str(Path(d.impath).relative_to(root)), d.label) for d in items]

    part_root, full_root = tmp_path / "part", tmp_path / "full"
    P.make_pocket_dataset("pocket_shortcut", part_root, per_class=TINY, test_per_class=1)
    P.make_pocket_dataset("pocket_shortcut", full_root, per_class=TINY)
    part, full = build_dataset("pocket_shortcut", part_root), build_dataset("pocket_shortcut", full_root)
    assert (len(part.train), len(part.val), len(part.test)) == (16 * 2, 16, 16) and len(full.test) == 16 * 3
    for a, b in ((part.train, full.train), (part.val, full.val), (part.test, first(full.test, 1))):
        assert listed(a, part_root) == listed(b, full_root)
        assert all(Path(x.impath).read_bytes() == Path(y.impath).read_bytes() for x, y in zip(a, b))

    marker = part_root / "pocket_shortcut" / ".complete"

    def written(n=None):
        P.make_pocket_dataset("pocket_shortcut", part_root, per_class=TINY, test_per_class=n)
        return marker.read_text().strip(), len(build_dataset("pocket_shortcut", part_root).test)

    full_marker = f"{P.VERSION}/{TINY}"
    assert written(1) == (f"{full_marker}/test_per_class=1", 16)  # enough: kept
    assert written(2) == (f"{full_marker}/test_per_class=2", 32)  # more: written again
    assert written(3) == written(None) == written(1) == (full_marker, 48)  # all of them: the full copy serves any n


def test_the_registry_writes_the_test_prefix_for_the_pocket_datasets_only(tmp_path, monkeypatch):
    monkeypatch.setenv("DRA_CACHE_DIR", str(tmp_path))
    dusk = build_dataset("pocket_dusk", test_per_class=3)
    assert len(dusk.test) == 8 * 3 and len(dusk.train) == 8 * 32  # the benchmark's train and val, 3 test images
    assert P.has_test_prefix((tmp_path / "data" / "pocket_dusk" / ".complete").read_text().strip(), P.VERSION, 3)
    assert not P.has_test_prefix(f"{P.VERSION}/test_per_class=3", P.VERSION, 4)
    assert not P.has_test_prefix(f"old{P.VERSION}", P.VERSION, 1)
    shapes = build_dataset("shapes", test_per_class=3)  # a generator that cannot stop early writes it all
    assert len(shapes.test) == 16 * len(shapes.classnames)
