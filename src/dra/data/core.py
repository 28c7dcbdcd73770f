"""The small value types every data module shares: `Datum`, `DatasetSplits`, `DataError`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DOCS_HINT = "see docs/datasets.md"


class DataError(Exception):
    """A dataset problem a user can fix. `str(e)` is one line: what was expected, where, and the fix.

    (Raised inside a DataLoader worker, torch re-raises it in the main process as a `DataError`
    whose message also carries the worker's traceback.)
    """


@dataclass(frozen=True)
class Datum:
    """One labelled image: absolute path, integer label, class name (as Dassl's `Datum`)."""

    impath: str
    label: int
    classname: str


@dataclass
class DatasetSplits:
    """Train / val / test lists of one dataset, with class names indexed by label.

    `image_dir` is the folder the split file's relative paths start from (CoOp's `image_dir`).
    `val_is_test` marks datasets whose val list *is* the test list (ImageNet, as in CoOp): the
    few-shot draw then leaves val whole instead of sampling it.
    """

    train: list[Datum]
    val: list[Datum]
    test: list[Datum]
    classnames: list[str]
    name: str
    image_dir: Path
    val_is_test: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def relpath(self, datum: Datum) -> str:
        """`datum.impath` relative to `image_dir`, with forward slashes (as in CoOp's split files)."""
        return Path(os.path.relpath(datum.impath, self.image_dir)).as_posix()
