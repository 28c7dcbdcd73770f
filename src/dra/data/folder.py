"""A user's own images: any folder with one sub-folder per class (an "image folder").

    my_pets/
        cat/           *.jpg, *.png, ... (sub-folders inside a class are read too)
        golden_retriever/
        classnames.txt   (optional: "<folder name> <class name>" per line)

`build_dataset("/path/to/my_pets")` reads it like a built-in dataset: the registry resolves a name
that is an existing directory to a `folder_spec`, whose reader is `read_image_folder`.

- Labels enumerate the sorted class folders; the class name is the folder name with `_` read as a
  space, or the name `classnames.txt` gives the folder.
- Train / val / test come from a CoOp split file when one is given (`split=FILE`, the
  `split_zhou_*.json` format, paths relative to the dataset folder), else from a deterministic split
  of each class's sorted file list: CoOp's `read_and_split_data` proportions (50 % train, 20 % val,
  the rest test, `round()` as CoOp), shuffled by a `random.Random` whose seed is derived (SHA-256)
  from a fixed string and the class folder's name. The split is the same on every machine and does
  not change when another class is added; nothing is written into the data folder.
- Files are images by extension (`IMAGE_EXTENSIONS`); other files (notes, the split file) are
  ignored. Whether each image opens is checked by `dra data check PATH` (and by training with
  `train.skip_bad_images=true`).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from pathlib import Path

from dra.data.core import DOCS_HINT, DataError, DatasetSplits, Datum, read_text_lines, safe_text
from dra.data.readers import read_split_json
from dra.data.spec import DatasetSpec

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
CLASSNAMES_FILE = "classnames.txt"
SPLIT_PROPORTIONS = (0.5, 0.2)  # CoOp's read_and_split_data(p_trn=0.5, p_val=0.2): test gets the rest
SPLIT_SEED_TEXT = "dra-image-folder-split-v1"


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def folder_dataset_name(path: str | os.PathLike, split: str | os.PathLike | None = None) -> str:
    """A safe, stable name for a folder dataset (run folders, tables): `<folder>-<8 hex of the path>`.

    The hash covers the absolute path and the split file, so two folders called `data` (or one folder
    with two split files) never share a run folder.
    """
    p = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    key = str(p) if split is None else f"{p}|{os.path.abspath(os.path.expanduser(os.fspath(split)))}"
    digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", p.name).strip("._") or "folder"
    return f"{safe[:40]}-{digest}"


def is_folder_dataset(name: str | os.PathLike) -> bool:
    """Whether a dataset name is a path to an existing directory (then it is read as an image folder)."""
    try:
        return Path(os.path.expanduser(os.fspath(name))).is_dir()
    except (OSError, ValueError):
        return False


def folder_spec(path: str | os.PathLike, split: str | os.PathLike | None = None):
    """The `DatasetSpec` of an image folder (the registry's mechanism, so every protocol reads it)."""
    p = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    split_path = None if split in (None, "") else Path(os.path.abspath(os.path.expanduser(os.fspath(split))))
    return DatasetSpec(
        name=folder_dataset_name(p, split_path),
        title=p.name or str(p),
        folder=str(p),
        image_subdir="",
        layout=f"{p}/<class folder>/*.jpg|png|... (optional {CLASSNAMES_FILE}: '<folder> <class name>' per line)",
        reader=read_image_folder,
        split_file=None if split_path is None else str(split_path),
        aliases=(),
        user_folder=True,
    )


def _split_seed(folder: str) -> int:
    key = f"{SPLIT_SEED_TEXT}/{folder}".encode("utf-8", "surrogateescape")  # a non-UTF-8 folder name too
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def split_class(files: list[str], folder: str) -> tuple[list[str], list[str], list[str]]:
    """CoOp's read_and_split_data for one class, on the sorted list with a seed derived from `folder`.

    n_train = round(0.5 n), n_val = round(0.2 n), test = the rest. Where CoOp would assert (a class
    too small for three non-empty parts), a class with at least one image keeps one for training.
    """
    files = sorted(files)
    random.Random(_split_seed(folder)).shuffle(files)
    n = len(files)
    n_train = round(n * SPLIT_PROPORTIONS[0])
    n_val = round(n * SPLIT_PROPORTIONS[1])
    if n and n_train == 0:
        n_train = 1
    n_val = min(n_val, n - n_train)
    return files[:n_train], files[n_train : n_train + n_val], files[n_train + n_val :]


def _class_files(class_dir: Path) -> list[str]:
    """Image files under a class folder (recursively), as sorted '/'-separated paths relative to it.

    Symlinked *files* count; symlinked *sub-folders* are not entered (`os.walk` without
    `followlinks`): a link to `..` or `.` would otherwise loop, multiply the files or bring other
    classes' images in under this label. Each image is counted once, in the folder it lives in.
    """
    out = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(class_dir)
        out.extend((rel / f).as_posix() for f in filenames if not f.startswith(".") and is_image_file(f))
    return sorted(out)


def read_classnames_file(path: Path) -> dict[str, str]:
    """`classnames.txt` of an image folder: `<folder name> <class name>` per line, `#` comments."""
    names = {}
    for number, line in enumerate(read_text_lines(path), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        folder, _, name = line.partition(" ")
        if not name.strip():
            raise DataError(
                f"{path} line {number}: expected '<folder name> <class name>', got {line[:80]!r}; {DOCS_HINT}"
            )
        names[folder] = name.strip()
    return names


def class_folders(root: Path) -> tuple[list[str], list[str]]:
    """(sorted class folders, their class names) of an image folder."""
    with os.scandir(root) as it:
        folders = sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    names_file = root / CLASSNAMES_FILE
    given = read_classnames_file(names_file) if names_file.is_file() else {}
    return folders, [given.get(f, safe_text(f).replace("_", " ")) for f in folders]


def _distinct_class_dirs(ddir: Path, folders: list[str]) -> None:
    """Refuse two class folders that are one folder (or one inside the other) through a symlink."""
    real = {folder: os.path.realpath(ddir / folder) for folder in folders}
    owner: dict[str, str] = {}
    for folder in sorted(folders, key=lambda f: len(real[f])):
        path = real[folder]
        for other_path, other in owner.items():
            if path == other_path or path.startswith(other_path.rstrip(os.sep) + os.sep):
                raise DataError(
                    f"class folders {ddir / other} and {ddir / folder} hold the same images ({folder} links into "
                    f"{path}): each image must live in one class folder; remove the link; {DOCS_HINT}"
                )
        owner[path] = folder


def _require_classes(ddir: Path, folders: list[str], files: dict[str, list[str]], layout: str) -> None:
    """At least two class folders, each with at least one image."""
    if len(folders) < 2:
        what = "no class folders" if not folders else f"one class folder ({folders[0]})"
        raise DataError(
            f"{ddir} has {what}: an image-folder dataset needs at least 2 classes, one sub-folder of images per "
            f"class ({layout}); {DOCS_HINT}"
        )
    empty = [f for f in folders if not files[f]]
    if empty:
        raise DataError(
            f"class folder {ddir / empty[0]} has no images ({len(empty)} of {len(folders)} class folders are empty; "
            f"image extensions: {' '.join(IMAGE_EXTENSIONS)}): add images or remove the folder; {DOCS_HINT}"
        )


def require_train_and_test(splits: DatasetSplits, source: Path) -> DatasetSplits:
    """A folder dataset must have a class count of at least 2 and non-empty train and test lists."""
    if len(splits.classnames) < 2:
        raise DataError(
            f"{source} defines {len(splits.classnames)} class(es): a dataset needs at least 2 classes; {DOCS_HINT}"
        )
    for key in ("train", "test"):
        if not getattr(splits, key):
            raise DataError(
                f"{source}: the {key} split is empty: add images (a class of n images gives round(n/2) to train, "
                f"round(n/5) to val, the rest to test: 4 give each a share) or {key} entries to the split file; "
                f"{DOCS_HINT}"
            )
    return splits


def read_image_folder(spec, root: Path | None = None) -> DatasetSplits:
    """Read an image folder (its `spec.folder`), with the spec's split file when it has one.

    Raises `DataError` unless there are at least 2 classes, each with an image, and train and test
    are non-empty (the protocols need both).
    """
    ddir = Path(spec.folder)
    if not ddir.is_dir():
        raise DataError(f"dataset folder not found: expected a folder at {ddir}; {DOCS_HINT}")
    if spec.split_file:
        split_path = Path(spec.split_file)
        return require_train_and_test(read_split_json(spec, split_path, ddir), split_path)
    folders, names = class_folders(ddir)
    _distinct_class_dirs(ddir, folders)
    files = {folder: _class_files(ddir / folder) for folder in folders}
    _require_classes(ddir, folders, files, spec.layout)
    lists: dict[str, list[Datum]] = {"train": [], "val": [], "test": []}
    for label, (folder, name) in enumerate(zip(folders, names, strict=True)):
        parts = split_class(files[folder], folder)
        for key, part in zip(lists, parts, strict=True):
            lists[key].extend(Datum(impath=str(ddir / folder / f), label=label, classname=name) for f in part)
    splits = DatasetSplits(
        train=lists["train"], val=lists["val"], test=lists["test"], classnames=names, name=spec.name, image_dir=ddir
    )
    return require_train_and_test(splits, ddir)
