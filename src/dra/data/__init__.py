"""Datasets in CoOp's layout, Dassl-identical few-shot draws, base/new splits and transforms.

    from dra.data import build_dataset, fewshot, subsample_classes
    splits = build_dataset("eurosat", "/data")               # CoOp's split_zhou_EuroSAT.json
    base = subsample_classes(fewshot(splits, 16, seed=1), "base")

`build_transforms` and `ImageDataset` need torch; they are imported on first use so that the
registry and the draws stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dra.data.core import DataError, DatasetSplits, Datum
from dra.data.fewshot import base_new_labels, fewshot, subsample_classes
from dra.data.generated.shapes import SHAPES_CLASSES, make_shapes
from dra.data.registry import (
    BASE_TO_NEW_DATASETS,
    DATASETS,
    DOMAIN_SHIFT_DATASETS,
    DatasetSpec,
    build_dataset,
    data_cache_dir,
    get_spec,
)

if TYPE_CHECKING:  # pragma: no cover
    from dra.data.image_dataset import ImageDataset, load_image
    from dra.data.transforms import (
        CLIP_MEAN,
        CLIP_STD,
        build_transforms,
        build_transforms_from_preprocess,
        clip_transforms,
        preprocess_params,
    )

_LAZY = {
    "ImageDataset": "dra.data.image_dataset",
    "load_image": "dra.data.image_dataset",
    "build_transforms": "dra.data.transforms",
    "build_transforms_from_preprocess": "dra.data.transforms",
    "clip_transforms": "dra.data.transforms",
    "preprocess_params": "dra.data.transforms",
    "CLIP_MEAN": "dra.data.transforms",
    "CLIP_STD": "dra.data.transforms",
}

__all__ = [
    "BASE_TO_NEW_DATASETS",
    "DATASETS",
    "DOMAIN_SHIFT_DATASETS",
    "SHAPES_CLASSES",
    "DataError",
    "DatasetSpec",
    "DatasetSplits",
    "Datum",
    "base_new_labels",
    "build_dataset",
    "data_cache_dir",
    "fewshot",
    "get_spec",
    "make_shapes",
    "subsample_classes",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dra.data' has no attribute {name!r}")
