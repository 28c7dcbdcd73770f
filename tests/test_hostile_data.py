"""Hostile data (issue #19, data layer): symlink loops, giant labels, nested or escaping split files,
16-bit and float images, non-UTF-8 names, degenerate folders, `--shots 0`.

Every folder is built under tmp_path from images PIL writes here (no shared data). CLI cases run the
real `python -m dra` in a subprocess with a timeout (no hang) and, for the giant label, a 2 GiB
address-space limit (no 23 GB set); each must end in a label-correct result or one `error:` line
with exit code 1.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY
from dra.data import DataError, build_dataset, fewshot, subsample_classes
from dra.data.image_dataset import load_image
from dra.engine.evaluate import evaluate

CLI_TIMEOUT = 60
SRC = str(Path(sys.modules["dra"].__file__).resolve().parents[1])  # the subprocess runs the code under test


# -- helpers -------------------------------------------------------------------------------------


def write_png(path: Path | bytes, seed: int, size: int = 16) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(os.fsdecode(path), format="PNG")


def make_folder(root: Path, classes: dict[str, int]) -> Path:
    """`root/<class>/<i>.png`, distinct random pixels per image."""
    seed = 0
    for name, n in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            seed += 1
            write_png(root / name / f"{i}.png", seed)
    return root


def dra(*args, cwd: Path | None = None, memory_gib: float | None = None) -> subprocess.CompletedProcess:
    """`python -m dra ARGS` in a subprocess (timeout, optional address-space limit); text decoded safely."""
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")

    def limit() -> None:
        size = int(memory_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    res = subprocess.run(
        [sys.executable, "-m", "dra", *(os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=CLI_TIMEOUT,
        preexec_fn=limit if memory_gib else None,
    )
    res.stdout = res.stdout.decode("utf-8", "backslashreplace")
    res.stderr = res.stderr.decode("utf-8", "backslashreplace")
    return res


def error_line(res: subprocess.CompletedProcess) -> str:
    """The one `error:` line of a failed command: exit code 1, no traceback, nothing else on stderr."""
    assert res.returncode == 1, (res.returncode, res.stdout[-2000:], res.stderr[-2000:])
    lines = [line for line in res.stderr.splitlines() if line.strip() and not line.startswith("warning")]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr[-2000:]
    return lines[0]


def all_items(ds):
    return ds.train + ds.val + ds.test


# -- 1. symlinks inside class folders ------------------------------------------------------------


def test_a_symlink_to_the_parent_adds_nothing_to_the_class(tmp_path):
    root = make_folder(tmp_path / "ds", {"A": 4, "B": 4, "C": 2})
    os.symlink("..", root / "A" / "up")  # A/up/B/..., A/up/A/up/... : a loop through every class
    ds = build_dataset(root)
    items = all_items(ds)
    assert len(items) == 10  # each image once
    for d in items:  # each under the class folder it lives in
        assert Path(d.impath).parent.name == ds.classnames[d.label] and "/up/" not in d.impath
    assert not {d.impath for d in ds.train} & {d.impath for d in ds.test}
    assert [sum(d.label == c for d in items) for c in range(3)] == [4, 4, 2]


def test_self_links_do_not_hang_data_check(tmp_path):
    root = make_folder(tmp_path / "ds", {"A": 4, "B": 4})
    os.symlink(".", root / "B" / "a")
    os.symlink(".", root / "B" / "b")  # followed, 2**depth paths: the check never ended
    res = dra("data", "check", root)
    assert res.returncode == 0, res.stderr
    assert "files       8 listed, 8 present, 0 missing" in res.stdout


def test_symlinked_files_count_and_a_class_folder_linked_to_another_is_refused(tmp_path):
    root = make_folder(tmp_path / "ds", {"A": 4, "B": 4})
    os.symlink(root / "B" / "0.png", root / "A" / "linked.png")  # a symlinked *file* is an image of A
    ds = build_dataset(root)
    assert sum(d.label == 0 for d in all_items(ds)) == 5
    os.symlink("A", root / "C")  # class C is class A: the same images under two labels
    with pytest.raises(DataError, match=r"class folders .*/A and .*/C hold the same images"):
        build_dataset(root)


# -- 2. split files: giant labels, nesting, garbage, paths outside the dataset -----------------------


def _split(root: Path, train, test, name="split.json") -> Path:
    path = root.parent / name
    path.write_text(json.dumps({"train": train, "val": [], "test": test}))
    return path


def test_a_giant_label_is_an_error_in_bounded_memory(tmp_path):
    root = make_folder(tmp_path / "ds", {"A": 2, "B": 2})
    split = _split(root, [["A/0.png", 0, "a"], ["B/0.png", 10_000_000_000, "b"]], [["A/1.png", 0, "a"]])
    res = dra("data", "check", root, "--split", split, memory_gib=2)
    line = error_line(res)
    assert str(split) in line and "not 0..1 for its 2 classes" in line and "largest 10000000000" in line


@pytest.mark.parametrize(
    "text, reason",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"train": [[', "Expecting value"),
        ("\xff\xfe garbage", "Expecting value"),
        ('{"train": [["A/0.png", 1e999, "a"]], "val": [], "test": []}', "bad entry"),
        ('{"train": ["abc"], "val": [], "test": []}', "bad entry"),
        ('{"train": [["A/0.png", true, "a"]], "val": [], "test": []}', "bad entry"),
    ],
    ids=["nested", "truncated", "garbage", "infinite-label", "string-entry", "bool-label"],
)
def test_a_garbled_split_file_is_one_error_line(tmp_path, text, reason):
    root = make_folder(tmp_path / "ds", {"A": 2, "B": 2})
    split = tmp_path / "split.json"
    split.write_text(text, encoding="utf-8")
    line = error_line(dra("data", "check", root, "--split", split))
    assert str(split) in line and reason in line


@pytest.mark.parametrize("entry", ["/etc/hostname", "../../etc/hostname", "A/../../outside.png", "..", ""])
def test_split_entries_outside_the_dataset_folder_are_refused(tmp_path, entry):
    root = make_folder(tmp_path / "ds", {"A": 2, "B": 2})
    (tmp_path / "outside.png").write_bytes((root / "A" / "0.png").read_bytes())
    split = _split(root, [["A/0.png", 0, "a"], [entry, 1, "b"]], [["A/1.png", 0, "a"]])
    line = error_line(dra("data", "check", root, "--split", split))
    assert f"entry path {entry!r} in 'train' of {split}" in line
    assert "relative to the image folder and stay inside it" in line


def test_a_sane_split_file_still_reads(tmp_path):
    root = make_folder(tmp_path / "ds", {"A": 2, "B": 2})
    split = _split(
        root, [["A/0.png", 0, "a"], ["./B/sub/../0.png", 1, "b"]], [["A/1.png", 0, "a"], ["B/1.png", 1, "b"]]
    )
    ds = build_dataset(root, split=split)
    assert ds.classnames == ["a", "b"] and [d.label for d in ds.train] == [0, 1]
    assert ds.train[1].impath == str(root / "./B/sub/../0.png")


# -- 3. 16-bit and float images ------------------------------------------------------------------

GRADIENT16 = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (4, 1))
GRADIENT8 = np.asarray(Image.fromarray((GRADIENT16 / 257).round().astype(np.uint8)).convert("RGB")).astype(int)


def test_a_16_bit_png_gives_the_8_bit_gradient(tmp_path):
    path = tmp_path / "g16.png"
    Image.fromarray(GRADIENT16).save(path)
    assert Image.open(path).mode == "I;16"  # what PIL really reads
    got = np.asarray(load_image(str(path))).astype(int)
    assert got.shape == (4, 256, 3) and np.abs(got - GRADIENT8).max() <= 1
    assert got[0, 0, 0] == 0 and got[0, -1, 0] == 255 and got[0, 128, 0] in (128, 129)


def test_a_float_tiff_in_0_1_gives_the_8_bit_gradient_and_other_ranges_are_refused(tmp_path):
    path = tmp_path / "f.tif"
    Image.fromarray((GRADIENT16 / 65535).astype(np.float32)).save(path)
    assert Image.open(path).mode == "F"
    got = np.asarray(load_image(str(path))).astype(int)
    assert np.abs(got - GRADIENT8).max() <= 1
    bad = tmp_path / "hdr.tif"
    Image.fromarray((GRADIENT16 / 65535 * 3 - 1).astype(np.float32)).save(bad)
    with pytest.raises(DataError, match=r"cannot read image .*hdr\.tif .*values in \[-1, 2\], expected \[0, 1\]"):
        load_image(str(bad))


def test_a_32_bit_integer_tiff_scales_by_its_range(tmp_path):
    path = tmp_path / "i32.tif"
    Image.fromarray(GRADIENT16.astype(np.int32) * 32768).save(path)  # up to 2**31 - 32768
    assert Image.open(path).mode == "I"
    assert np.abs(np.asarray(load_image(str(path))).astype(int) - GRADIENT8).max() <= 1


# -- 4. non-UTF-8 file and folder names -----------------------------------------------------------


@pytest.fixture
def undecodable(tmp_path) -> Path:
    """A folder dataset with a file named b'\\xff.png' in class A and a class folder b'\\xfeE'."""
    root = make_folder(tmp_path / "ds", {"A": 5, "B": 5, "C": 5})
    write_png(os.fsencode(root / "A") + b"/\xff.png", 99)
    os.mkdir(os.fsencode(root) + b"/\xfeE")
    for i in range(5):
        write_png(os.fsencode(root) + b"/\xfeE/" + f"{i}.png".encode(), 200 + i)
    return root


def test_data_check_and_fewshot_print_undecodable_names_escaped(undecodable):
    res = dra("data", "check", undecodable)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "files       21 listed, 21 present, 0 missing" in res.stdout and "\\xfeE" in res.stdout
    res = dra("data", "fewshot", "--dataset", undecodable, "--shots", 5)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert out["classnames"] == ["A", "B", "C", "\\xfeE"]
    assert "A/\\xff.png" in {e[0] for k in ("train", "val", "test") for e in out[k]}


def test_predict_csv_writes_undecodable_names_escaped(undecodable, tmp_path):
    import dra as dra_api

    model = dra_api.create_model(["a", "b"], method="dra", model=TINY, pretrained=None)
    checkpoint = dra_api.save_adapters(model, tmp_path / "ck")
    out_csv = tmp_path / "out.csv"
    res = dra("predict", undecodable / "A", "--checkpoint", checkpoint, "--csv", out_csv, "--top-k", 1)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = out_csv.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "image,rank,class,prob" and len(rows) == 1 + 6
    assert any(row.startswith(f"{undecodable / 'A'}/\\xff.png,1,") for row in rows)


def test_base2new_trains_on_a_folder_with_undecodable_names(undecodable, tmp_path):
    res = dra(
        *("base2new", "--dataset", undecodable, "--model", TINY, "--pretrained", "none", "--shots", 2, "--seeds", 1),
        *("--output", tmp_path / "runs", "train.epochs=1", "train.batch_size=4", "train.num_workers=0"),
        *("eval.num_workers=0", "eval.batch_size=8"),
    )
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads(next((tmp_path / "runs").rglob("seed1/result*.json")).read_text())
    assert (result["base_classes"], result["new_classes"], result["base_test"], result["new_test"]) == (2, 2, 4, 4)


# -- 5. degenerate folders -----------------------------------------------------------------------


def test_an_empty_class_folder_is_an_error_in_build_and_check(tmp_path):
    root = make_folder(tmp_path / "ds", {"A": 4, "B": 4})
    (root / "Empty").mkdir()
    (root / "Empty" / "notes.txt").write_text("no image here")
    with pytest.raises(DataError, match=r"class folder .*/ds/Empty has no images"):
        build_dataset(root)
    line = error_line(dra("data", "check", root))
    assert f"class folder {root / 'Empty'} has no images" in line and "add images or remove the folder" in line


def test_a_one_class_folder_is_an_error_before_training(tmp_path):
    root = make_folder(tmp_path / "ds", {"Only": 6})
    line = error_line(dra("data", "check", root))
    assert f"{root} has one class folder (Only)" in line and "at least 2 classes" in line
    out = tmp_path / "runs"
    base2new = ("base2new", "--dataset", root, "--model", TINY, "--pretrained", "none", "--output", out)
    assert "at least 2 classes" in error_line(dra(*base2new))
    assert not out.exists() or not any(out.rglob("*.pt"))  # nothing trained, nothing half written


def test_a_folder_whose_classes_give_no_test_image_is_an_error(tmp_path):
    root = make_folder(tmp_path / "ds", {"A": 1, "B": 1})  # one image each: train only
    with pytest.raises(DataError, match=r"the test split is empty"):
        build_dataset(root)


def test_no_new_classes_and_an_empty_evaluation_are_errors(tmp_path):
    root = make_folder(tmp_path / "ds", {"A": 4, "B": 4})
    split = _split(root, [["A/0.png", 0, "a"]], [["A/1.png", 0, "a"], ["B/1.png", 1, "b"]])  # train: class a only
    ds = build_dataset(root, split=split)
    assert subsample_classes(ds, "base").classnames == ["a"]
    with pytest.raises(DataError, match=r"no new classes: .* needs at least 2"):
        subsample_classes(ds, "new")
    with pytest.raises(DataError, match=r"new: no images to evaluate"):
        evaluate(None, [], None, desc="ds new")


# -- 6. shots ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shots", [0, -5])
def test_shots_below_one_are_an_error(tmp_path, shots):
    root = make_folder(tmp_path / "ds", {"A": 4, "B": 4})
    line = error_line(dra("data", "fewshot", "--dataset", root, "--shots", shots))
    assert line.startswith(f"error: --shots must be >= 1, got {shots}")
    with pytest.raises(DataError, match="shots must be an integer >= 1"):
        fewshot(build_dataset(root), shots, seed=1)
