"""Helpers for the data tests: where the real data is, and throw-away trees in CoOp's layout.

Real data lives beside the repository in `../shared/data` (read-only, never copied into the
project). Trees built here hold tiny placeholder images written by the tests themselves.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterable

import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SPLITS_DIR = SHARED_DATA / "splits"
EUROSAT_DIR = SHARED_DATA / "eurosat"

requires_eurosat = pytest.mark.skipif(
    not ((EUROSAT_DIR / "2750").is_dir() and (EUROSAT_DIR / "split_zhou_EuroSAT.json").is_file()),
    reason=f"real EuroSAT not found at {EUROSAT_DIR} (expected ../shared/data beside the repository)",
)


def _image_bytes(fmt: str, size=(4, 4), colour=(120, 60, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


TINY_JPEG = _image_bytes("JPEG")
TINY_PNG = _image_bytes("PNG")


def write_placeholders(image_dir: Path, relpaths: Iterable[str], data: bytes = TINY_JPEG) -> int:
    """Write the same tiny image at every relative path under `image_dir`; returns the file count."""
    made_dirs: set[Path] = set()
    n = 0
    for rel in relpaths:
        path = image_dir / rel
        if path.parent not in made_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(path.parent)
        path.write_bytes(data)
        n += 1
    return n


def split_tree(root: Path, folder: str, image_subdir: str, split_name: str, split: dict) -> Path:
    """`root/folder/<image_subdir>/...` with one placeholder per split entry, plus the split file."""
    ddir = root / folder
    image_dir = ddir / image_subdir if image_subdir else ddir
    image_dir.mkdir(parents=True, exist_ok=True)
    rels = dict.fromkeys(e[0] for k in ("train", "val", "test") for e in split[k])
    write_placeholders(image_dir, rels)
    (ddir / split_name).write_text(json.dumps(split))
    return image_dir


def write_classnames(path: Path, pairs: Iterable[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{wnid} {name}\n" for wnid, name in pairs))


def class_folder_tree(base: Path, files_per_folder: dict[str, list[str]]) -> None:
    """Folders and files created in the given (deliberately unsorted) order."""
    for folder, files in files_per_folder.items():
        write_placeholders(base / folder, files)
