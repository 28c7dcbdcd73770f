"""A few-shot draw as a JSON file, so that the runs of a launched grid share one draw per (dataset,
shots, seed): the launcher draws once and writes the file, each job reads it (`Experiment.draw`).

Plain data only: the lists of (image path, label, class name), the class names and the split's flags.
"""

from __future__ import annotations

import json
from pathlib import Path

from dra.data.core import DataError, DatasetSplits, Datum

FORMAT = "dra-draw-v1"


def _items(items) -> list[list]:
    return [[d.impath, d.label, d.classname] for d in items]


def write_draw(path: str | Path, splits: DatasetSplits) -> Path:
    from dra.io import atomic_write_text

    data = {
        "format": FORMAT,
        "name": splits.name,
        "image_dir": str(splits.image_dir),
        "val_is_test": splits.val_is_test,
        "classnames": list(splits.classnames),
        **{k: _items(getattr(splits, k)) for k in ("train", "val", "test")},
    }
    atomic_write_text(Path(path), json.dumps(data))
    return Path(path)


def read_draw(path: str | Path) -> DatasetSplits:
    try:
        data = json.loads(Path(path).read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        lists = {
            k: [Datum(str(p), int(label), str(name)) for p, label, name in data[k]] for k in ("train", "val", "test")
        }
        return DatasetSplits(
            **lists,
            classnames=list(data["classnames"]),
            name=str(data["name"]),
            image_dir=Path(data["image_dir"]),
            val_is_test=bool(data["val_is_test"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"the shared draw {path} cannot be read ({e}); launch the grid again to rewrite it") from None
