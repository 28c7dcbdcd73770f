"""`dra data check | fewshot | list | make-shapes` through the real `dra` command."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dra.cli import app
from dra.data import make_shapes


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("cli_root"))


def _run(*args):
    return CliRunner().invoke(app, ["data", *map(str, args)])


def test_fewshot_prints_the_draw_as_json(root):
    res = _run("fewshot", "--dataset", "shapes", "--data-root", root, "--shots", 16, "--seed", 1)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == {"train", "val", "test", "classnames"}
    assert (len(out["train"]), len(out["val"]), len(out["test"]), len(out["classnames"])) == (160, 40, 160, 10)
    rel, label, name = out["train"][0]
    assert rel.startswith("red_circle/") and label == 0 and name == "red circle"
    assert (root / "shapes" / "images" / rel).is_file()
    again = json.loads(_run("fewshot", "-d", "shapes", "--data-root", root).stdout)
    assert again == out  # defaults: 16 shots, seed 1
    other = json.loads(_run("fewshot", "-d", "shapes", "--data-root", root, "--seed", 2).stdout)
    assert other["train"] != out["train"]
    new = json.loads(_run("fewshot", "-d", "shapes", "--data-root", root, "--subsample", "new").stdout)
    assert new["classnames"] == out["classnames"][5:] and {e[1] for e in new["train"]} == set(range(5))


def test_check_passes_and_fails(root, tmp_path):
    res = _run("check", "--dataset", "shapes", "--data-root", root, "--decode")
    assert res.exit_code == 0, res.output
    assert "480 listed, 480 present, 0 missing" in res.stdout and "blue square" in res.stdout
    bad = make_shapes(tmp_path)
    (bad / "shapes" / "images" / "white_ring" / "white_ring_003.png").unlink()
    res = _run("check", "-d", "shapes", "--data-root", bad)
    assert res.exit_code == 1 and "white_ring_003.png" in res.stdout and "1 missing" in res.stderr


def test_errors_are_one_line_on_stderr_with_exit_code_1(tmp_path):
    for args in (
        ["fewshot", "-d", "eurosat", "--data-root", tmp_path / "none"],
        ["check", "-d", "dtd", "--data-root", tmp_path],
        ["fewshot", "-d", "shapes", "--data-root", tmp_path],
        ["fewshot", "-d", "nope"],
        ["fewshot", "-d", "shapes", "--subsample", "half"],
    ):
        res = _run(*args)
        assert res.exit_code == 1, (args, res.output)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "docs/datasets.md" in lines[0], res.stderr
        assert "Traceback" not in res.output and res.stdout == ""


def test_list_names_every_dataset():
    res = _run("list")
    assert res.exit_code == 0
    assert all(n in res.stdout for n in ("imagenet_r", "eurosat", "shapes", "oxford_flowers"))


def test_make_shapes_command(tmp_path):
    res = _run("make-shapes", "--out", tmp_path)
    assert res.exit_code == 0 and (tmp_path / "shapes" / "split_zhou_Shapes.json").is_file()
