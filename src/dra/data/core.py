"""The small value types every data module shares: `Datum`, `DatasetSplits`, `DataError`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dra.errors import DraError

DOCS_HINT = "see docs/datasets.md"


def safe_text(text: str) -> str:
    """`text` printable and writable as UTF-8: a file name's undecodable bytes (which Python keeps as
    lone surrogates, PEP 383) become `\\xff` escapes, any other lone surrogate `\\udxxx`."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte (e.g. "\\ud800" from JSON)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class DataError(DraError):
    """A dataset problem a user can fix. `str(e)` is one line: what was expected, where, and the fix.

    The message is made printable (`safe_text`): a path with undecodable bytes cannot break the
    printing of the error that names it. (Raised inside a DataLoader worker, torch re-raises it in the
    main process as a `DataError` whose message also carries the worker's traceback.)
    """

    def __init__(self, *args) -> None:
        super().__init__(*(safe_text(a) if isinstance(a, str) else a for a in args))


def read_text_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (a class-name list); `DataError` naming the file when it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().split("\n")  # as iterating the file: \n, \r\n, \r end a line
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path} is not UTF-8 text (byte {e.start}: {e.reason}): save it as UTF-8; {DOCS_HINT}"
        ) from None
    except OSError as e:
        raise DataError(f"cannot read {path} ({type(e).__name__}: {e.strerror or e}); {DOCS_HINT}") from None


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
