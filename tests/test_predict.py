"""`dra predict` and `model.predict` / `dra.predict`: top-k per image, folders, bad files, other class names."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from PIL import Image
from typer.testing import CliRunner

import dra
from conftest import TINY
from dra.cli import app, expand_variadic
from dra.data import build_dataset


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    ds = build_dataset("shapes")
    model = dra.create_model(ds.classnames[:5], method="dra", model=TINY, pretrained=None)
    return str(dra.save_adapters(model, tmp_path_factory.mktemp("ck") / "shapes-dra")), ds


@pytest.fixture
def images(tmp_path, checkpoint):
    _, ds = checkpoint
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for i, d in enumerate(ds.test[:5]):
        shutil.copyfile(d.impath, folder / ("sub" if i % 2 else ".") / f"img{i}.png")
    (folder / "sub" / "broken.jpg").write_bytes(b"not an image")
    (folder / "readme.txt").write_text("ignored")
    return folder


def _cli(*args):
    return CliRunner().invoke(app, expand_variadic([str(a) for a in args]))


def test_cli_json_reads_folders_recursively_and_reports_bad_files(checkpoint, images):
    ck, ds = checkpoint
    res = _cli("predict", images, "--checkpoint", ck, "--top-k", 3, "--json", "--device", "cpu")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(out["predictions"]) == 5 and out["classnames"] == ds.classnames[:5]
    first = out["predictions"][0]
    assert first["image"].endswith("img0.png") and len(first["top"]) == 3
    probs = [t["prob"] for t in first["top"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert {t["class"] for t in first["top"]} <= set(ds.classnames[:5])
    assert [e["image"].endswith("broken.jpg") for e in out["errors"]] == [True]
    assert "skipped:" in res.stderr and "broken.jpg" in res.stderr


def test_cli_table_csv_and_other_classnames(checkpoint, images, tmp_path):
    ck, _ = checkpoint
    table = _cli("predict", images / "img0.png", "--checkpoint", ck, "--top-k", 2, "--device", "cpu")
    assert table.exit_code == 0 and "img0.png" in table.stdout and "%" in table.stdout
    names = tmp_path / "names.txt"
    names.write_text("a zebra\n# comment\n\na teapot\na violin\n")
    out_csv = tmp_path / "out.csv"
    res = _cli(
        "predict", images, "--checkpoint", ck, "--classnames", names, "--csv", out_csv, "--top-k", 5, "--device", "cpu"
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 5 * 3 and {r["class"] for r in rows} == {"a zebra", "a teapot", "a violin"}
    assert rows[0]["rank"] == "1"
    none = _cli("predict", tmp_path / "missing.jpg", "--checkpoint", ck)
    assert none.exit_code == 1 and "no such file" in none.stderr


def test_python_api_in_one_call(checkpoint, images):
    ck, ds = checkpoint
    out = dra.predict(ck, [images], top_k=1, device="cpu", batch_size=2, progress=False)
    assert len(out.rows) == 5 and len(out.errors) == 1
    model = dra.load_model(ck)
    pil = Image.open(images / "img0.png")
    again = dra.predict(model, [pil, str(images / "img0.png")], top_k=2, device="cpu")
    assert again.rows[0]["image"] == "<image 0>" and again.rows[1]["image"].endswith("img0.png")  # input order
    a, b = again.rows[0]["top"], again.rows[1]["top"]  # the same image, as PIL and as a path
    assert [t["class"] for t in a] == [t["class"] for t in b]
    assert [t["prob"] for t in a] == pytest.approx([t["prob"] for t in b], abs=1e-5)
    assert again.rows[0]["top"][0]["class"] == out.rows[0]["top"][0]["class"]
    swapped = dra.predict(model, str(images / "img0.png"), classnames=["x", "y"], device="cpu")
    assert [t["class"] for t in swapped.rows[0]["top"]] in (["x", "y"], ["y", "x"])
