"""Image transforms of the benchmark (docs/design.md section 2, Dassl's `build_transform`).

train: RandomResizedCrop(224, scale=(0.08, 1), bicubic) -> RandomHorizontalFlip -> ToTensor -> CLIP norm
test:  Resize(224, bicubic; shorter side) -> CenterCrop(224) -> ToTensor -> CLIP norm

`build_transforms_from_preprocess` reads the input size and normalisation from a backbone's own
(open_clip) eval preprocessing and keeps the recipe above. open_clip's *train* preprocessing is not
used: it crops with scale (0.9, 1) and does not flip, which is not what the published runs did.
"""

from __future__ import annotations

import logging
from typing import Sequence

from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

log = logging.getLogger(__name__)

CLIP_MEAN: tuple[float, float, float] = tuple(OPENAI_DATASET_MEAN)  # OpenAI CLIP's normalisation
CLIP_STD: tuple[float, float, float] = tuple(OPENAI_DATASET_STD)
TRAIN_CROP_SCALE = (0.08, 1.0)


def _to_rgb(image):
    from dra.data.image_dataset import to_rgb  # 16-bit / float greyscale scaled by range, not clipped

    return to_rgb(image) if getattr(image, "mode", "RGB") != "RGB" else image


def build_transforms(
    train: bool,
    image_size: int = 224,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    crop_scale_min: float = TRAIN_CROP_SCALE[0],
) -> T.Compose:
    """The train or test transform of the benchmark, PIL image -> normalised float tensor (3, S, S);
    `crop_scale_min`: the smallest area of the random crop (Dassl 0.08, Tip-Adapter 0.5)."""
    if train:
        scale = (crop_scale_min, TRAIN_CROP_SCALE[1])
        steps = [
            T.RandomResizedCrop(image_size, scale=scale, interpolation=InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(),
        ]
    else:
        steps = [
            T.Resize(image_size, interpolation=InterpolationMode.BICUBIC),
            T.CenterCrop(image_size),
        ]
    return T.Compose([T.Lambda(_to_rgb), *steps, T.ToTensor(), T.Normalize(mean=tuple(mean), std=tuple(std))])


def preprocess_params(preprocess) -> dict:
    """Input size, mean and std from a backbone's eval preprocessing (e.g. open_clip's `preprocess_val`).

    Logs a warning for each step that disagrees with the benchmark's test transform (shorter-side
    bicubic resize, then a square center crop of the same size); the benchmark recipe is kept.
    """
    params = {"image_size": 224, "mean": CLIP_MEAN, "std": CLIP_STD}
    for step in getattr(preprocess, "transforms", []):
        if isinstance(step, T.Normalize):
            params["mean"], params["std"] = tuple(step.mean), tuple(step.std)
        elif isinstance(step, T.CenterCrop):
            h, w = step.size
            if h != w:
                log.warning("backbone center crop %s is not square: using %d", step.size, h)
            params["image_size"] = int(h)
        elif isinstance(step, T.Resize):
            if step.interpolation != InterpolationMode.BICUBIC:
                log.warning("backbone resizes with %s; the benchmark uses bicubic", step.interpolation.value)
            if not isinstance(step.size, int) and len(step.size) != 1:
                log.warning(
                    "backbone resizes to %s, not the shorter side; the benchmark resizes the shorter side", step.size
                )
    return params


def clip_transforms(preprocess, crop_scale_min: float = TRAIN_CROP_SCALE[0]) -> tuple[T.Compose, T.Compose]:
    """(train, test) transforms at a backbone's input size and normalisation (`CLIPBackbone.preprocess`)."""
    p = preprocess
    return (
        build_transforms(True, p.image_size, p.mean, p.std, crop_scale_min),
        build_transforms(False, p.image_size, p.mean, p.std),
    )


def build_transforms_from_preprocess(preprocess, train: bool) -> T.Compose:
    """`build_transforms` with the size and normalisation of a backbone's eval preprocessing."""
    return build_transforms(train, **preprocess_params(preprocess))
