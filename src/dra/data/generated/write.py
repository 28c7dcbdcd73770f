"""Writing a generated dataset in CoOp's layout, once per generator version and safely from several
processes: `images/<class>/<class>_NNN.png` + the split file, written into a private temporary folder
renamed into place, with a marker holding the generator version."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from dra.data.core import DOCS_HINT, DataError

MARKER = ".complete"


def class_folder(classname: str) -> str:
    return classname.replace(" ", "_")


def write_coop_dataset(dataset_dir: Path, classnames, per_class: dict, render, split_file: str, version: str) -> None:
    """Write `images/<class>/<class>_NNN.png` and the CoOp split file; `render(label, index)` draws one image."""
    image_dir = dataset_dir / "images"
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, classname in enumerate(classnames):
        folder = class_folder(classname)
        (image_dir / folder).mkdir(parents=True, exist_ok=True)
        index = 0
        for key, count in per_class.items():
            for _ in range(count):
                rel = f"{folder}/{folder}_{index:03d}.png"
                render(label, index).save(image_dir / rel, format="PNG", compress_level=6)
                split[key].append([rel, label, classname])
                index += 1
    with open(dataset_dir / split_file, "w", encoding="utf-8") as f:
        json.dump(split, f, indent=0)
    (dataset_dir / MARKER).write_text(version + "\n")


def written_version(dataset_dir: Path) -> str | None:
    """The generator version a complete dataset folder was written by (its marker), or None."""
    marker = Path(dataset_dir) / MARKER
    return marker.read_text().strip() if marker.is_file() else None


def is_complete(dataset_dir: Path, version: str, accepts: Callable[[str], bool] | None = None) -> bool:
    """Whether `dataset_dir` is complete and its marker is `version` (or one `accepts` takes instead)."""
    written = written_version(dataset_dir)
    return written is not None and (written == version or (accepts is not None and accepts(written)))


def make_generated(
    out_root: str | os.PathLike, folder: str, write, version: str, accepts: Callable[[str], bool] | None = None
) -> Path:
    """Write `<out_root>/<folder>` with `write(tmp_dir)` unless a complete copy of `version` is there (or of
    another version that `accepts(marker)` takes: a copy with more test images than asked for)."""
    root = Path(os.path.abspath(os.path.expanduser(os.fspath(out_root))))
    target = root / folder
    if is_complete(target, version, accepts):
        return root
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder}-tmp-", dir=root))
    except OSError as e:
        raise DataError(
            f"{folder}: cannot write the generated dataset to {root} ({e.strerror or e}); "
            f"set DRA_CACHE_DIR to a writable folder; {DOCS_HINT}"
        ) from None
    try:
        write(tmp)
        if target.exists():  # stale (older generator) or half-written: move it aside first
            if is_complete(target, version, accepts):
                return root
            old = Path(tempfile.mkdtemp(prefix=f".{folder}-old-", dir=root))
            os.replace(target, old / folder)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not is_complete(target, version):  # another process did not win the race: a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
