"""The run-folder file names (`dra.run_files`): what the writers write is what the readers parse."""

from __future__ import annotations

import json

from dra import run_files as F
from dra.report.plots import run_accuracies


def test_result_names_round_trip():
    assert F.eval_suffix(None) == "" and F.eval_suffix(8) == "-test_per_class8"
    assert F.result_name() == "result.json"
    assert F.result_name(F.eval_suffix(8)) == "result-test_per_class8.json"
    assert F.eval_name("caltech101", F.eval_suffix(2)) == "eval_caltech101-test_per_class2.json"
    assert F.parse_result_name("result-test_per_class8.json") == ("result", "-test_per_class8")
    assert F.parse_result_name("eval_dtd.json") == ("eval", "dtd")
    assert F.parse_result_name("unit.json") is None and F.parse_result_name("result.csv") is None
    assert F.adapters_path("runs/x").name == "adapters" and F.ADAPTERS_WEIGHTS == "adapters.safetensors"
    assert {k: p.name for k, p in F.table_files("out", "base2new").items()} == {
        "md": "base2new.md",
        "csv": "base2new.csv",
        "json": "base2new.json",
    }


def test_the_reader_finds_what_the_writers_name(tmp_path):
    (tmp_path / F.result_name(F.eval_suffix(8))).write_text(json.dumps({"base": 80.0, "new": 60.0, "hm": 68.57}))
    (tmp_path / F.eval_name("dtd")).write_text(json.dumps({"dataset": "dtd", "accuracy": 42.5}))
    (tmp_path / "unit.json").write_text(json.dumps({"accuracy": 1.0}))
    assert run_accuracies(tmp_path) == {
        "base-test_per_class8": 80.0,
        "new-test_per_class8": 60.0,
        "HM-test_per_class8": 68.57,
        "dtd": 42.5,
    }
