"""The registry: a dataset by any of its names (registry key, paper title, CoOp folder, alias) or as a
user's image folder, its data root resolved (or generated), its splits built.

    splits = build_dataset("eurosat", "/data")   # CoOp's split_zhou_EuroSAT.json under /data/eurosat

What each dataset is lives in the catalogue (`catalogue.py`); how it is read in `readers.py` and
`folder.py`; data the project draws itself is generated through its spec's `generate` hook, so
nothing here branches on a dataset's name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# the catalogue's lists, re-exported: callers look datasets up here
from dra.data.catalogue import _SPECS, DATASETS
from dra.data.catalogue import BASE_TO_NEW_DATASETS as BASE_TO_NEW_DATASETS
from dra.data.catalogue import DOMAIN_SHIFT_DATASETS as DOMAIN_SHIFT_DATASETS
from dra.data.catalogue import POCKET_BENCHMARK as POCKET_BENCHMARK
from dra.data.core import DOCS_HINT, DataError, DatasetSplits
from dra.data.folder import folder_spec, is_folder_dataset
from dra.data.spec import DatasetSpec


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.lower())


_LOOKUP: dict[str, str] = {}
for _s in _SPECS:
    for _n in (_s.name, _s.title, _s.folder, *_s.aliases):
        _LOOKUP.setdefault(_key(_n), _s.name)
    if _s.split_file:  # CoOp's class names: split_zhou_OxfordPets.json -> "oxfordpets"
        _LOOKUP.setdefault(_key(_s.split_file[len("split_zhou_") : -len(".json")]), _s.name)


def get_spec(name: str | os.PathLike, split: str | os.PathLike | None = None) -> DatasetSpec:
    """The spec for a registry name, a paper name ("EuroSAT", "Flowers102") or a CoOp folder name; a
    path to an existing directory is a user's image folder (`dra.data.folder`), read with `split` (a CoOp
    split file) when given."""
    key = _LOOKUP.get(_key(os.fspath(name)))
    if key is None or (os.sep in os.fspath(name) or "/" in os.fspath(name)):
        if is_folder_dataset(name):
            return folder_spec(name, split)
        if key is None:
            looks_like_path = any(c in os.fspath(name) for c in "/\\.") or os.fspath(name).startswith("~")
            what = "no such folder" if looks_like_path else "unknown dataset"
            raise DataError(
                f"{what} {os.fspath(name)!r}: a dataset is a registry name (known: {', '.join(DATASETS)}) "
                f"or a folder with one sub-folder of images per class; {DOCS_HINT}"
            )
    if split not in (None, ""):
        raise DataError(
            f"{DATASETS[key].name}: a split file (--split) is for image-folder datasets; "
            f"{DATASETS[key].title} uses CoOp's own split; {DOCS_HINT}"
        )
    return DATASETS[key]


def dataset_name(name: str | os.PathLike, split: str | os.PathLike | None = None) -> str:
    """The dataset's safe name: the registry name, or `<folder>-<hash>` for an image folder (run folders)."""
    return get_spec(name, split).name


def data_cache_dir() -> Path:
    """Where the project writes data it makes itself: `$DRA_CACHE_DIR/data`, default `~/.cache/dra/data`."""
    from dra.io import cache_root

    return cache_root().absolute() / "data"


def resolve_data_root(
    spec: DatasetSpec, data_root: str | os.PathLike | None, test_per_class: int | None = None
) -> Path:
    """The data root as an absolute path; for the embedded dataset without one, the generated copy (with only
    the first `test_per_class` test images of each class where the generator can stop there)."""
    if spec.user_folder:
        return Path(spec.folder)
    if data_root is None:
        if spec.generate is not None:
            if test_per_class and spec.generates_test_prefix:
                return spec.generate(data_cache_dir(), test_per_class=int(test_per_class))
            return spec.generate(data_cache_dir())
        raise DataError(
            f"{spec.name}: no data root given: pass --data-root DIR (the folder that contains "
            f"{spec.folder}/); {DOCS_HINT}"
        )
    root = Path(os.path.abspath(os.path.expanduser(os.fspath(data_root))))
    if not root.is_dir():
        raise DataError(f"{spec.name}: data root not found: expected a folder at {root}; {DOCS_HINT}")
    if spec.embedded and not spec.dataset_dir(root).is_dir():
        raise DataError(
            f"{spec.name}: dataset folder not found: expected {spec.dataset_dir(root)}; omit the data root "
            f"to use the generated copy in {data_cache_dir()}, or write one with "
            f"`dra data make-shapes --out {root}`; {DOCS_HINT}"
        )
    return root


def build_dataset(
    name: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    split: str | os.PathLike | None = None,
    test_per_class: int | None = None,
) -> DatasetSplits:
    """The full train / val / test splits of a dataset, read from CoOp's layout under `data_root`.

    `data_root` may be None for the embedded dataset ("shapes"), which is then generated once
    (deterministically) into `data_cache_dir()`. Raises `DataError` with a one-line message naming
    the path expected when a folder or split file is missing. A `name` that is a directory is read as
    an image folder (one sub-folder per class; `dra.data.folder`), with `split` (a CoOp split file,
    paths relative to that folder) when given, and needs no data root. `test_per_class` (a run that scores
    only the first n test images of each class) lets a generated dataset stop there: its test list may then
    hold just those.
    """
    spec = get_spec(name, split)
    root = resolve_data_root(spec, data_root, test_per_class)
    return spec.reader(spec, root)
