"""The registry reads every CoOp layout: split files on placeholder trees, ImageNet and its variants,
FGVC-Aircraft, and one-line errors for what is missing."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from data_fixtures import (
    SPLITS_DIR,
    TINY_JPEG,
    class_folder_tree,
    split_tree,
    write_classnames,
    write_placeholders,
)
from dra.data import DATASETS, DataError, build_dataset, fewshot, get_spec, subsample_classes
from dra.data.check import check_dataset

# registry name -> split file in ../shared/data/splits
SPLIT_DATASETS = {
    "caltech101": "split_zhou_Caltech101.json",
    "dtd": "split_zhou_DescribableTextures.json",
    "oxford_flowers": "split_zhou_OxfordFlowers.json",
    "oxford_pets": "split_zhou_OxfordPets.json",
    "stanford_cars": "split_zhou_StanfordCars.json",
    "ucf101": "split_zhou_UCF101.json",
}
# CoOp's base / new class counts (BASELINES.md 1.1)
BASE_NEW = {
    "caltech101": (50, 50),
    "dtd": (24, 23),
    "oxford_flowers": (51, 51),
    "oxford_pets": (19, 18),
    "stanford_cars": (98, 98),
    "ucf101": (51, 50),
}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(SPLIT_DATASETS))
def test_split_file_datasets_on_placeholder_trees(name, tmp_path):
    split_path = SPLITS_DIR / SPLIT_DATASETS[name]
    if not split_path.is_file():
        pytest.skip(f"CoOp split file not found at {split_path} (expected ../shared/data beside the repository)")
    spec = DATASETS[name]
    assert spec.split_file == split_path.name
    split = json.loads(split_path.read_text())
    split_tree(tmp_path, spec.folder, spec.image_subdir, spec.split_file, split)

    ds = build_dataset(name, tmp_path)
    counts = (len(ds.train), len(ds.val), len(ds.test))
    assert counts == tuple(len(split[k]) for k in ("train", "val", "test")) == spec.expected_counts
    assert len(ds.classnames) == spec.num_classes
    names = {e[1]: e[2] for k in ("train", "val", "test") for e in split[k]}
    assert ds.classnames == [names[i] for i in range(len(names))]
    assert ds.image_dir == spec.image_dir(tmp_path)
    for key in ("train", "val", "test"):  # file order, paths under the image folder, labels as written
        items = getattr(ds, key)
        assert [[ds.relpath(d), d.label, d.classname] for d in items] == split[key]

    report = check_dataset(name, tmp_path)
    assert report.ok and report.files == sum(counts) and not report.warnings

    fs = fewshot(ds, 16, 1)
    base, new = subsample_classes(fs, "base"), subsample_classes(fs, "new")
    assert (len(base.classnames), len(new.classnames)) == BASE_NEW[name]
    assert len(base.test) + len(new.test) == len(ds.test)

    gone = ds.test[7].impath
    os.remove(gone)
    assert check_dataset(name, tmp_path).missing == [gone]


def _toy_split(classes: list[str], per=(5, 2, 3), ext=".jpg"):
    split = {}
    for key, n in zip(("train", "val", "test"), per):
        split[key] = [[f"{c.replace(' ', '_')}/{key}_{i}{ext}", y, c] for y, c in enumerate(classes) for i in range(n)]
    return split


@pytest.mark.parametrize("name", ["food101", "sun397", "eurosat"])
def test_other_split_file_datasets_read_their_folders(name, tmp_path):
    spec = DATASETS[name]
    split = _toy_split(["apple pie", "baby back ribs", "baklava"])
    split_tree(tmp_path, spec.folder, spec.image_subdir, spec.split_file, split)
    ds = build_dataset(name, tmp_path)
    assert ds.classnames == ["apple pie", "baby back ribs", "baklava"]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (15, 6, 9)
    assert all(os.path.isfile(d.impath) for d in ds.train + ds.val + ds.test)
    rep = check_dataset(name, tmp_path)
    assert rep.ok and any("CoOp" in w for w in rep.warnings)  # toy counts differ from CoOp's


WNIDS = {  # created in this (unsorted) order on purpose
    "n02000003": "tabby cat",
    "n01000001": "goldfish",
    "n03000002": "great white shark",
    "n01500000": "hen",
}


def _imagenet_tree(root, val=True):
    write_classnames(root / "imagenet" / "classnames.txt", sorted(WNIDS.items()))
    train = root / "imagenet" / "images" / "train"
    class_folder_tree(train, {w: [f"{w}_{i}.JPEG" for i in (9, 3, 12, 1, 5, 7)] for w in WNIDS})
    if val:
        class_folder_tree(
            root / "imagenet" / "images" / "val",
            {w: [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (4, 2, 8)] for w in WNIDS},
        )


def test_imagenet_sorted_folders_and_files_val_is_test(tmp_path):
    _imagenet_tree(tmp_path)
    ds = build_dataset("imagenet", tmp_path)
    assert ds.classnames == ["goldfish", "hen", "tabby cat", "great white shark"]  # sorted wnids
    assert (len(ds.train), len(ds.val), len(ds.test)) == (24, 12, 12)
    assert [ds.relpath(d) for d in ds.train[:6]] == [
        f"train/n01000001/n01000001_{i}.JPEG"
        for i in (1, 12, 3, 5, 7, 9)  # sorted file names
    ]
    assert ds.val == ds.test and ds.val_is_test
    assert [d.label for d in ds.test] == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    fs = fewshot(ds, 2, 1)
    assert len(fs.train) == 8 and fs.val == ds.test  # CoOp samples ImageNet's train only
    base = subsample_classes(fs, "base")
    assert base.classnames == ["goldfish", "hen"] and len(base.val) == len(base.test) == 6


def test_imagenet_errors(tmp_path):
    _imagenet_tree(tmp_path, val=False)
    (tmp_path / "imagenet" / "images" / "val").mkdir()
    write_placeholders(tmp_path / "imagenet" / "images" / "val", ["ILSVRC2012_val_00000001.JPEG"])
    with pytest.raises(DataError, match="one folder per wnid"):
        build_dataset("imagenet", tmp_path)
    (tmp_path / "imagenet" / "classnames.txt").unlink()
    with pytest.raises(DataError, match="classnames.txt"):
        build_dataset("imagenet", tmp_path)


def test_imagenet_sketch_a_r_keep_their_own_classes(tmp_path):
    write_classnames(tmp_path / "imagenet" / "classnames.txt", sorted(WNIDS.items()))
    # -A: two of the four classes and a README; class names come from ImageNet's classnames.txt
    a = tmp_path / "imagenet-adversarial" / "imagenet-a"
    class_folder_tree(a, {"n03000002": ["b.jpg", "a.jpg"], "n01500000": ["c.jpg"]})
    (a / "README.txt").write_text("not a class")
    ds = build_dataset("imagenet_a", tmp_path)
    assert ds.classnames == ["hen", "great white shark"]
    assert [(ds.relpath(d), d.label) for d in ds.test] == [
        ("n01500000/c.jpg", 0),
        ("n03000002/a.jpg", 1),
        ("n03000002/b.jpg", 1),
    ]
    assert ds.train == [] and ds.val == []
    # -R with its own copy of classnames.txt (as CoOp's instructions have it)
    r = tmp_path / "imagenet-rendition" / "imagenet-r"
    class_folder_tree(r, {"n01000001": ["x.jpg"]})
    write_classnames(tmp_path / "imagenet-rendition" / "classnames.txt", [("n01000001", "gold fish (own)")])
    assert build_dataset("imagenet_r", tmp_path).classnames == ["gold fish (own)"]
    # -Sketch: all classes
    class_folder_tree(tmp_path / "imagenet-sketch" / "images", {w: ["1.JPEG"] for w in WNIDS})
    sk = build_dataset("imagenet_sketch", tmp_path)
    assert sk.classnames == ["goldfish", "hen", "tabby cat", "great white shark"] and len(sk.test) == 4


def test_imagenetv2_folder_index_is_classnames_line(tmp_path):
    pairs = [(f"n{i:08d}", f"class {i}") for i in range(1000)]
    write_classnames(tmp_path / "imagenet" / "classnames.txt", pairs)
    base = tmp_path / "imagenetv2" / "imagenetv2-matched-frequency-format-val"
    class_folder_tree(base, {str(i): ["a.jpeg"] for i in range(1000)})
    write_placeholders(base / "10", ["0b.jpeg", "0a.jpeg"])
    ds = build_dataset("imagenetv2", tmp_path)
    assert len(ds.classnames) == 1000 and len(ds.test) == 1002
    tens = [(ds.relpath(d), d.label, d.classname) for d in ds.test if d.label == 10]
    assert tens == [("10/0a.jpeg", 10, "class 10"), ("10/0b.jpeg", 10, "class 10"), ("10/a.jpeg", 10, "class 10")]
    shutil.rmtree(base / "999")
    with pytest.raises(DataError, match="999"):
        build_dataset("imagenetv2", tmp_path)


def test_fgvc_aircraft_variant_files(tmp_path):
    d = tmp_path / "fgvc_aircraft"
    d.mkdir()
    (d / "variants.txt").write_text("707-320\nA300B4\nDC-3\n")
    lines = {
        "train": ["1000001 DC-3", "1000002 707-320", "1000003 A300B4"],
        "val": ["1000004 A300B4"],
        "test": ["1000005 707-320", "1000006 DC-3"],
    }
    for k, v in lines.items():
        (d / f"images_variant_{k}.txt").write_text("\n".join(v) + "\n")
    write_placeholders(d / "images", [f"{1000001 + i}.jpg" for i in range(6)])
    ds = build_dataset("fgvc_aircraft", tmp_path)
    assert ds.classnames == ["707-320", "A300B4", "DC-3"]
    assert [(ds.relpath(x), x.label) for x in ds.train] == [("1000001.jpg", 2), ("1000002.jpg", 0), ("1000003.jpg", 1)]
    assert check_dataset("fgvc_aircraft", tmp_path).ok


def _one_line(e: DataError) -> str:
    msg = str(e)
    assert "\n" not in msg and "docs/datasets.md" in msg
    return msg


def test_missing_pieces_are_one_line_errors_naming_the_path(tmp_path):
    with pytest.raises(DataError) as e:
        build_dataset("eurosat", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in _one_line(e.value)
    with pytest.raises(DataError) as e:
        build_dataset("eurosat", tmp_path)
    assert str(tmp_path / "eurosat") in _one_line(e.value)
    (tmp_path / "eurosat" / "2750").mkdir(parents=True)
    with pytest.raises(DataError) as e:
        build_dataset("eurosat", tmp_path)
    assert str(tmp_path / "eurosat" / "split_zhou_EuroSAT.json") in _one_line(e.value)
    with pytest.raises(DataError) as e:  # the dataset folder given as data root
        build_dataset("eurosat", tmp_path / "eurosat")
    assert "not eurosat/ itself" in _one_line(e.value)
    (tmp_path / "eurosat" / "split_zhou_EuroSAT.json").write_text("{not json")
    with pytest.raises(DataError) as e:
        build_dataset("eurosat", tmp_path)
    assert "split_zhou_EuroSAT.json" in _one_line(e.value)
    with pytest.raises(DataError) as e:
        build_dataset("oxford_pets", None)
    assert "--data-root" in _one_line(e.value)
    with pytest.raises(DataError) as e:
        build_dataset("mnist", tmp_path)
    assert "eurosat" in _one_line(e.value)


def test_names_papers_use_resolve():
    for alias, name in [
        ("EuroSAT", "eurosat"),
        ("Flowers102", "oxford_flowers"),
        ("OxfordPets", "oxford_pets"),
        ("DescribableTextures", "dtd"),
        ("imagenet-a", "imagenet_a"),
        ("ImageNet-Sketch", "imagenet_sketch"),
        ("FGVCAircraft", "fgvc_aircraft"),
        ("food-101", "food101"),
        ("caltech-101", "caltech101"),
    ]:
        assert get_spec(alias).name == name
    assert set(DATASETS) == {
        "imagenet",
        "caltech101",
        "oxford_pets",
        "stanford_cars",
        "oxford_flowers",
        "food101",
        "fgvc_aircraft",
        "sun397",
        "dtd",
        "eurosat",
        "ucf101",
        "imagenetv2",
        "imagenet_sketch",
        "imagenet_a",
        "imagenet_r",
        "shapes",
        "pocket_scenes",
        "pocket_colours",
        "pocket_objects",
        "pocket_dusk",
        "pocket_shapes",
        "pocket_patterns",
        "pocket_counting",
        "pocket_colour_shape",
        "pocket_pattern_shape",
        "pocket_count_colour",
        "pocket_colour_scene",
        "pocket_shortcut",
        # every pocket dataset's dev draw (another generator seed, for tuning)
        *(
            f"{n}@dev"
            for n in (
                "pocket_scenes",
                "pocket_colours",
                "pocket_objects",
                "pocket_dusk",
                "pocket_shapes",
                "pocket_patterns",
                "pocket_counting",
                "pocket_colour_shape",
                "pocket_pattern_shape",
                "pocket_count_colour",
                "pocket_colour_scene",
                "pocket_shortcut",
            )
        ),
    }


def test_read_only_data_root_is_never_written(tmp_path):
    spec = DATASETS["dtd"]
    split = _toy_split(["banded", "blotchy"], per=(20, 6, 3))
    split_tree(tmp_path, spec.folder, spec.image_subdir, spec.split_file, split)
    before = sorted(p for p in tmp_path.rglob("*"))
    modes = {}
    for p in [tmp_path, *before]:
        modes[p] = p.stat().st_mode
        p.chmod(modes[p] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        ds = fewshot(build_dataset("dtd", tmp_path), 16, 1)
        assert len(ds.train) == 32 and len(ds.val) == 8
        assert check_dataset("dtd", tmp_path, decode=True).ok
    finally:
        for p, m in modes.items():
            p.chmod(m)
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_check_decode_reports_bad_files(tmp_path):
    spec = DATASETS["dtd"]
    split = _toy_split(["banded", "blotchy"], per=(3, 1, 1))
    image_dir = split_tree(tmp_path, spec.folder, spec.image_subdir, spec.split_file, split)
    (image_dir / "banded" / "train_1.jpg").write_bytes(TINY_JPEG[: len(TINY_JPEG) // 2])  # truncated
    (image_dir / "blotchy" / "test_0.jpg").write_bytes(b"not an image")
    rep = check_dataset("dtd", tmp_path, decode=True)
    assert not rep.ok and rep.decoded == 10
    assert sorted(p for p, _ in rep.bad) == [
        str(image_dir / "banded" / "train_1.jpg"),
        str(image_dir / "blotchy" / "test_0.jpg"),
    ]


def test_generated_data_comes_through_the_specs_generate_hook(tmp_path, monkeypatch):
    """The registry calls a spec's `generate` hook with the data cache (it never branches on names)."""
    from dataclasses import replace

    from dra.data import registry

    calls = []
    monkeypatch.setenv("DRA_CACHE_DIR", str(tmp_path))
    spec = replace(get_spec("shapes"), generate=lambda folder: calls.append(folder) or tmp_path / "made")
    assert spec.embedded
    assert registry.resolve_data_root(spec, None) == tmp_path / "made"
    assert calls == [registry.data_cache_dir()]
    assert not get_spec("eurosat").embedded and get_spec("eurosat").generate is None


def test_the_data_layer_does_not_import_the_pocket_package():
    import subprocess
    import sys

    code = (
        "import sys, dra.data, dra.data.registry; print(sorted(m for m in sys.modules if m.startswith('dra.pocket')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
