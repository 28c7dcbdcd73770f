"""Helpers of the fault tests: a malicious pickle, the CLI in-process, tiny shapes runs (no shared data)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from typer.testing import CliRunner

from conftest import TINY
from dra.cli import app, expand_variadic

runner = CliRunner()
MARKER_ENV = "DRA_TEST_MARKER"


def _plant_marker(path: str) -> None:
    Path(path).write_text("pwned")


class Evil:
    """Unpickling this calls `_plant_marker(marker)`: any loader that runs pickle code writes the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_plant_marker, (self.marker,))


def write_evil(path: Path, marker: Path, how: str = "torch") -> Path:
    """A malicious file: torch.save's zip format ("torch"), or a bare pickle ("pickle")."""
    payload = {"state_dict": Evil(marker), "epoch": 1}
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "torch":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    return path


def invoke(*args):
    return runner.invoke(app, expand_variadic([str(a) for a in args]))


def one_error_line(result) -> str:
    """The single `error:` line of a failed command (asserts exit code 1 and nothing else on stderr)."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    rendered = [line.split("\r")[-1] for line in result.stderr.split("\n")]  # what a terminal shows
    lines = [line for line in rendered if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


QUICK = [
    "train.epochs=1",
    "train.batch_size=4",
    "train.num_workers=0",
    "eval.num_workers=0",
    "eval.batch_size=8",
    "test_per_class=2",
]


def shapes_base2new(out, *extra):
    """`dra base2new` on the embedded shapes dataset, tiny model, random weights, 2 shots, 1 epoch."""
    return invoke(
        "base2new",
        "--dataset",
        "shapes",
        "--model",
        TINY,
        "--pretrained",
        "none",
        "--shots",
        "2",
        "--seeds",
        "1",
        "--output",
        out,
        *QUICK,
        *extra,
    )


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


__all__ = ["Evil", "write_evil", "invoke", "one_error_line", "shapes_base2new", "files_under", "os"]
