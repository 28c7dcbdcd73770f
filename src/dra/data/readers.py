"""Dataset readers: CoOp's `DATASETS.md` layout under one data root, read as CoOp reads it.

Every dataset is described by a `DatasetSpec` (`spec.py`: folder names, split file, expected counts)
and read by one of four readers:

* `split file`   - CoOp's `split_zhou_<Name>.json` (`{"train"|"val"|"test": [[relpath, label,
                   classname], ...]}`), paths relative to the image folder. Nine of the eleven
                   benchmark datasets, and the generated ones (`shapes`, the pocket benchmark).
* `imagenet`     - class folders of `images/train` and `images/val`, names from `classnames.txt`;
                   the official val set is the test set and doubles as val (CoOp).
* `fgvc_aircraft`- `variants.txt` + `images_variant_{train,val,test}.txt` (CoOp has no json split).
* ImageNet variants - test-only, class names looked up in ImageNet's `classnames.txt`.

Order matters for the few-shot draw, so lists keep the split file's order. Where CoOp lists a
folder (ImageNet and its variants), Dassl's `listdir_nohidden` returns file-system order, which no
one can reproduce on another disk: here class folders *and* files are listed in sorted order. For
the split-file datasets the draw is therefore bit-for-bit CoOp's; for ImageNet it is the same
procedure on a documented, reproducible order (see docs/datasets.md).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from pathlib import Path
from typing import Sequence

from dra.data.core import DOCS_HINT, DataError, DatasetSplits, Datum, read_text_lines
from dra.data.spec import DatasetSpec

# --------------------------------------------------------------------------------------------
# Errors


def _missing(spec: DatasetSpec, data_root: Path, path: Path, what: str) -> DataError:
    """One line: which dataset, what is missing, the path expected, the layout, the docs."""
    hint = ""
    # A frequent slip: --data-root pointing at the dataset folder instead of its parent.
    inside = Path(data_root)
    looks_inside = (spec.image_subdir and (inside / spec.image_subdir).is_dir()) or (
        spec.split_file and (inside / spec.split_file).is_file()
    )
    if looks_inside and not spec.dataset_dir(data_root).is_dir():
        hint = f" (the data root should be the folder that contains {spec.folder}/, not {spec.folder}/ itself)"
    return DataError(f"{spec.name}: {what} not found: expected {path}{hint}; CoOp layout: {spec.layout}; {DOCS_HINT}")


def _require_dir(spec: DatasetSpec, root: Path, path: Path, what: str) -> None:
    if not path.is_dir():
        raise _missing(spec, root, path, what)


def _require_file(spec: DatasetSpec, root: Path, path: Path, what: str) -> None:
    if not path.is_file():
        raise _missing(spec, root, path, what)


# --------------------------------------------------------------------------------------------
# Helpers shared by the readers


def _classnames_from_items(spec: DatasetSpec, source: Path, *lists: Sequence[Datum]) -> list[str]:
    """Class names indexed by label; labels must be 0..n-1 and name each class one way."""
    names: dict[int, str] = {}
    for items in lists:
        for d in items:
            seen = names.setdefault(d.label, d.classname)
            if seen != d.classname:
                raise DataError(
                    f"{spec.name}: label {d.label} is called both {seen!r} and {d.classname!r} in {source}; "
                    f"the split file is not CoOp's, {DOCS_HINT}"
                )
    if not names:
        return []
    # n distinct labels must be exactly 0..n-1: any label >= n leaves one of 0..n-1 missing (bounded by n,
    # never by the largest label, which may be 10**10)
    missing = [i for i in range(len(names)) if i not in names]
    if missing:
        raise DataError(
            f"{spec.name}: labels in {source} are not 0..{len(names) - 1} for its {len(names)} classes "
            f"(missing {missing[:5]}, largest {max(names)}): number the classes from 0 without gaps; {DOCS_HINT}"
        )
    return [names[i] for i in range(len(names))]


def _sorted_subdirs(path: Path) -> list[str]:
    with os.scandir(path) as it:
        return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())


def _sorted_files(path: Path) -> list[str]:
    with os.scandir(path) as it:
        return sorted(e.name for e in it if not e.name.startswith(".") and e.is_file())


def read_key_value_lines(path: Path) -> list[tuple[str, str]]:
    """`key rest of the line` pairs of a text list, in file order; blank lines are skipped."""
    lines = read_text_lines(path)
    return [(key, rest) for key, _, rest in (line.strip().partition(" ") for line in lines if line.strip())]


def read_imagenet_classnames(path: Path) -> dict[str, str]:
    """CoOp's `classnames.txt`: one `wnid name words...` per line, in order (dict keeps it)."""
    return dict(read_key_value_lines(path))


def _wnid_folders(
    spec: DatasetSpec, folder: Path, name_of: dict[str, str], names_path: Path
) -> tuple[list[str], dict[str, int]]:
    """The sorted wnid folders under `folder` (each must have a name) and their labels 0..n-1."""
    folders = _sorted_subdirs(folder)
    if not folders:
        raise DataError(f"{spec.name}: no class folders in {folder} (expected one folder per wnid); {DOCS_HINT}")
    unknown = [f for f in folders if f not in name_of]
    if unknown:
        raise DataError(
            f"{spec.name}: class folder {folder / unknown[0]} has no line in {names_path} "
            f"({len(unknown)} such folders); {DOCS_HINT}"
        )
    return folders, {f: i for i, f in enumerate(folders)}


def _read_class_folders(
    split_dir: Path, folders: Sequence[str], label_of: dict[str, int], name_of: dict[str, str]
) -> list[Datum]:
    items: list[Datum] = []
    for folder in folders:
        label, classname = label_of[folder], name_of[folder]
        base = split_dir / folder
        items.extend(Datum(impath=str(base / f), label=label, classname=classname) for f in _sorted_files(base))
    return items


def _imagenet_classnames_file(spec: DatasetSpec, root: Path) -> Path:
    """A variant's own `classnames.txt` (CoOp copies it there), else ImageNet's."""
    own = spec.dataset_dir(root) / "classnames.txt"
    shared = Path(root) / "imagenet" / "classnames.txt"
    for p in (own, shared):
        if p.is_file():
            return p
    raise DataError(
        f"{spec.name}: class names not found: expected {own} or {shared} "
        f"(CoOp's ImageNet classnames.txt, 'wnid name' per line); {DOCS_HINT}"
    )


# --------------------------------------------------------------------------------------------
# Readers


def read_split_file_dataset(spec: DatasetSpec, root: Path) -> DatasetSplits:
    """Datasets with a CoOp `split_zhou_*.json` (OxfordPets.read_split)."""
    ddir, image_dir = spec.dataset_dir(root), spec.image_dir(root)
    _require_dir(spec, root, ddir, "dataset folder")
    _require_dir(spec, root, image_dir, "image folder")
    split_path = ddir / spec.split_file
    _require_file(spec, root, split_path, "split file")
    return read_split_json(spec, split_path, image_dir)


SPLIT_FORMAT = "{'train': [[relpath, label, classname], ...], 'val': [...], 'test': [...]}"


def _load_split_json(spec: DatasetSpec, split_path: Path):
    """The parsed JSON of a split file; `DataError` naming the file for anything that is not JSON."""
    if not split_path.is_file():
        raise DataError(f"{spec.name}: split file not found: expected {split_path}; {DOCS_HINT}")
    try:
        with open(split_path, encoding="utf-8") as f:
            return json.load(f)
    except RecursionError:
        reason = "nested too deeply"
    except UnicodeDecodeError as e:
        reason = f"not UTF-8 text (byte {e.start})"
    except ValueError as e:  # json.JSONDecodeError, and int() of a number too long to convert
        reason = str(e).splitlines()[0][:200]
    except OSError as e:
        reason = f"{type(e).__name__}: {e.strerror or e}"
    raise DataError(
        f"{spec.name}: cannot read split file {split_path} ({reason}): a split file is JSON {SPLIT_FORMAT}; {DOCS_HINT}"
    )


def _split_relpath(spec: DatasetSpec, split_path: Path, key: str, relpath) -> str:
    """A split entry's path: relative, inside the image folder (no absolute path, no `..` out of it)."""
    if not isinstance(relpath, str) or relpath in ("", ".") or "\x00" in relpath:
        problem = "is not a file path"
    elif relpath.startswith(("/", "\\")) or os.path.isabs(relpath) or re.match(r"^[A-Za-z]:", relpath):
        problem = "is an absolute path"
    elif posixpath.normpath(relpath).split("/")[0] == "..":
        problem = "leads out of the image folder ('..')"
    else:
        return relpath
    raise DataError(
        f"{spec.name}: entry path {str(relpath)[:200]!r} in '{key}' of {split_path} {problem}: paths in a split file "
        f"are relative to the image folder and stay inside it; fix the entry; {DOCS_HINT}"
    )


def _split_entry(spec: DatasetSpec, split_path: Path, key: str, entry, image_dir: Path) -> Datum:
    """One `[relpath, label, classname]` entry (label an integer >= 0, classname a string)."""
    ok = isinstance(entry, list) and len(entry) == 3
    label = entry[1] if ok else None
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    if not ok or not isinstance(label, int) or isinstance(label, bool) or label < 0 or not isinstance(entry[2], str):
        shown = repr(entry)
        raise DataError(
            f"{spec.name}: bad entry {shown[:200]}{'...' if len(shown) > 200 else ''} in '{key}' of {split_path} "
            f"(expected [relpath, label, classname], label an integer >= 0); {DOCS_HINT}"
        )
    relpath = _split_relpath(spec, split_path, key, entry[0])
    return Datum(impath=str(image_dir / relpath), label=label, classname=entry[2])


def read_split_json(spec: DatasetSpec, split_path: Path, image_dir: Path) -> DatasetSplits:
    """A CoOp split file (`{"train"|"val"|"test": [[relpath, label, classname], ...]}`) under `image_dir`.

    Raises `DataError` (one line, naming the file) for anything else: not JSON, nested too deeply,
    a bad entry, a path outside `image_dir`, labels that are not 0..n-1.
    """
    data = _load_split_json(spec, split_path)
    lists: dict[str, list[Datum]] = {}
    for key in ("train", "val", "test"):
        entries = data.get(key) if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise DataError(
                f"{spec.name}: split file {split_path} has no '{key}' list (expected {SPLIT_FORMAT}); {DOCS_HINT}"
            )
        lists[key] = [_split_entry(spec, split_path, key, entry, image_dir) for entry in entries]
    classnames = _classnames_from_items(spec, split_path, lists["train"], lists["val"], lists["test"])
    return DatasetSplits(
        train=lists["train"],
        val=lists["val"],
        test=lists["test"],
        classnames=classnames,
        name=spec.name,
        image_dir=image_dir,
    )


def read_imagenet(spec: DatasetSpec, root: Path) -> DatasetSplits:
    """ImageNet as CoOp reads it: train folder = train, official val = test, and val = test.

    Labels enumerate the sorted wnid folders of `images/train`; names come from `classnames.txt`.
    Files inside a class folder are sorted (Dassl keeps file-system order, which is not portable).
    """
    ddir, image_dir = spec.dataset_dir(root), spec.image_dir(root)
    _require_dir(spec, root, ddir, "dataset folder")
    names_path = ddir / "classnames.txt"
    _require_file(spec, root, names_path, "classnames.txt")
    train_dir, val_dir = image_dir / "train", image_dir / "val"
    _require_dir(spec, root, train_dir, "train image folder")
    _require_dir(spec, root, val_dir, "val image folder")
    name_of = read_imagenet_classnames(names_path)

    folders, label_of = _wnid_folders(spec, train_dir, name_of, names_path)
    val_folders = _sorted_subdirs(val_dir)
    if not val_folders:
        raise DataError(
            f"{spec.name}: no class folders in {val_dir}: the official val images must be sorted into "
            f"one folder per wnid, as in images/train; {DOCS_HINT}"
        )
    stray = [f for f in val_folders if f not in label_of]
    if stray:
        raise DataError(
            f"{spec.name}: val folder {val_dir / stray[0]} has no matching folder in {train_dir}; {DOCS_HINT}"
        )
    train = _read_class_folders(train_dir, folders, label_of, name_of)
    test = _read_class_folders(val_dir, val_folders, label_of, name_of)
    return DatasetSplits(
        train=train,
        val=list(test),
        test=test,
        classnames=[name_of[f] for f in folders],
        name=spec.name,
        image_dir=image_dir,
        val_is_test=True,
    )


def read_imagenet_wnid_variant(spec: DatasetSpec, root: Path) -> DatasetSplits:
    """ImageNet-Sketch / -A / -R: one folder per wnid; labels enumerate the sorted folders.

    -A and -R hold 200 of the 1000 classes, so they keep 200 labels (0..199) and their 200 names,
    as CoOp's `imagenet_a.py` / `imagenet_r.py` do; non-folders such as README.txt are ignored.
    """
    ddir, image_dir = spec.dataset_dir(root), spec.image_dir(root)
    _require_dir(spec, root, ddir, "dataset folder")
    _require_dir(spec, root, image_dir, "image folder")
    names_path = _imagenet_classnames_file(spec, root)
    name_of = read_imagenet_classnames(names_path)
    folders, label_of = _wnid_folders(spec, image_dir, name_of, names_path)
    test = _read_class_folders(image_dir, folders, label_of, name_of)
    return DatasetSplits(
        train=[],
        val=[],
        test=test,
        classnames=[name_of[f] for f in folders],
        name=spec.name,
        image_dir=image_dir,
    )


def read_imagenetv2(spec: DatasetSpec, root: Path) -> DatasetSplits:
    """ImageNet-V2 (matched frequency): folders `0`..`999`, folder i = line i of classnames.txt."""
    ddir, image_dir = spec.dataset_dir(root), spec.image_dir(root)
    _require_dir(spec, root, ddir, "dataset folder")
    _require_dir(spec, root, image_dir, "image folder")
    names_path = _imagenet_classnames_file(spec, root)
    names = list(read_imagenet_classnames(names_path).values())
    if len(names) != 1000:
        raise DataError(f"{spec.name}: {names_path} has {len(names)} classes, expected 1000; {DOCS_HINT}")
    folders = [str(i) for i in range(1000)]
    absent = [f for f in folders if not (image_dir / f).is_dir()]
    if absent:
        raise _missing(spec, root, image_dir / absent[0], f"class folder ({len(absent)} of 1000 absent)")
    test = _read_class_folders(image_dir, folders, {f: int(f) for f in folders}, {f: names[int(f)] for f in folders})
    return DatasetSplits(train=[], val=[], test=test, classnames=names, name=spec.name, image_dir=image_dir)


def read_fgvc_aircraft(spec: DatasetSpec, root: Path) -> DatasetSplits:
    """FGVC-Aircraft as CoOp reads it: labels = line order of variants.txt, official splits."""
    ddir, image_dir = spec.dataset_dir(root), spec.image_dir(root)
    _require_dir(spec, root, ddir, "dataset folder")
    _require_dir(spec, root, image_dir, "image folder")
    variants = ddir / "variants.txt"
    _require_file(spec, root, variants, "variants.txt")
    with open(variants, encoding="utf-8") as f:
        classnames = [line.strip() for line in f if line.strip()]
    label_of = {c: i for i, c in enumerate(classnames)}
    lists = {}
    for key in ("train", "val", "test"):
        path = ddir / f"images_variant_{key}.txt"
        _require_file(spec, root, path, f"images_variant_{key}.txt")
        items = []
        for imid, classname in read_key_value_lines(path):
            if classname not in label_of:
                raise DataError(f"{spec.name}: variant {classname!r} in {path} is not in {variants}; {DOCS_HINT}")
            items.append(Datum(impath=str(image_dir / f"{imid}.jpg"), label=label_of[classname], classname=classname))
        lists[key] = items
    return DatasetSplits(
        train=lists["train"],
        val=lists["val"],
        test=lists["test"],
        classnames=classnames,
        name=spec.name,
        image_dir=image_dir,
    )
