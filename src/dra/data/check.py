"""`dra data check`: counts per split and class, every listed file present, optionally decoded."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional

from dra.data.core import DataError, DatasetSplits
from dra.data.registry import DatasetSpec, get_spec, resolve_data_root

SPLITS = ("train", "val", "test")


@dataclass
class CheckReport:
    spec: DatasetSpec
    splits: DatasetSplits
    counts: dict[str, int]  # split -> items
    per_class: list[dict[str, int]]  # label -> {split: items}
    files: int  # distinct files listed
    missing: list[str] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of files that do not decode
    decoded: Optional[int] = None  # files opened, when decoding was asked
    warnings: list[str] = field(default_factory=list)
    shots: Optional[int] = None
    short: list[tuple[str, int]] = field(default_factory=list)  # (class, train images) below `shots`

    @property
    def ok(self) -> bool:
        return not self.missing and not self.bad


def _decode(path: str) -> Optional[str]:
    from dra.data.image_dataset import load_image

    try:
        load_image(path)
    except DataError as e:
        return str(e)
    return None


def check_dataset(
    name: str,
    data_root=None,
    decode: bool = False,
    workers: int = 4,
    progress: Optional[Callable[[int, int], None]] = None,
    split=None,
    shots: Optional[int] = None,
) -> CheckReport:
    """Read a dataset through the registry and verify it on disk. Raises `DataError` on layout errors.

    `name` may be a folder of class sub-folders (read with the split file `split` when given).
    `progress(n, total)` is called after each batch of `n` decoded images. With `shots`, the classes
    whose training list holds fewer images are listed in `short` (a warning too).
    """
    spec = get_spec(name, split)
    splits = spec.reader(spec, resolve_data_root(spec, data_root))
    lists = {k: getattr(splits, k) for k in SPLITS}
    counts = {k: len(v) for k, v in lists.items()}
    per_class = [{k: 0 for k in SPLITS} for _ in splits.classnames]
    for k, items in lists.items():
        for d in items:
            per_class[d.label][k] += 1

    warnings = []
    if spec.num_classes is not None and len(splits.classnames) != spec.num_classes:
        warnings.append(f"{len(splits.classnames)} classes, CoOp's {spec.title} has {spec.num_classes}")
    if spec.expected_counts is not None:
        got = tuple(counts[k] for k in SPLITS)
        if got != tuple(spec.expected_counts):
            warnings.append(
                f"train/val/test = {'/'.join(map(str, got))}, CoOp's {spec.title} has "
                f"{'/'.join(map(str, spec.expected_counts))}: results will not compare with published ones"
            )
    empty = [splits.classnames[i] for i, c in enumerate(per_class) if not any(c.values())]
    if empty:
        warnings.append(f"{len(empty)} classes have no images, e.g. {empty[0]!r}")

    short = []
    if shots is not None and shots >= 1:
        short = [(splits.classnames[i], c["train"]) for i, c in enumerate(per_class) if c["train"] < shots]
        if short:
            warnings.append(
                f"{len(short)} of {len(per_class)} classes have fewer than {shots} training images "
                f"(smallest: {min(n for _, n in short)}); they train on all they have"
            )
    paths = list(dict.fromkeys(d.impath for items in lists.values() for d in items))
    missing = [p for p in paths if not os.path.isfile(p)]
    report = CheckReport(
        spec, splits, counts, per_class, len(paths), missing=missing, warnings=warnings, shots=shots, short=short
    )
    if decode:
        absent = set(missing)
        present = [p for p in paths if p not in absent]
        done = 0
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # PIL decodes without the GIL
            for start in range(0, len(present), 4096):  # bounded number of pending futures
                batch = present[start : start + 4096]
                for path, err in zip(batch, pool.map(_decode, batch)):
                    if err is not None:
                        report.bad.append((path, err))
                done += len(batch)
                if progress is not None:
                    progress(len(batch), len(present))
        report.decoded = done
    return report
