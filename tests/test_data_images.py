"""Transforms of docs/design.md section 2 and `ImageDataset`'s handling of bad images."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from data_fixtures import TINY_JPEG
from dra.data import CLIP_MEAN, CLIP_STD, DataError, Datum, ImageDataset, build_transforms
from dra.data.transforms import build_transforms_from_preprocess, preprocess_params


def _steps(tf, kind):
    return [s for s in tf.transforms if isinstance(s, kind)]


def test_train_transform_recipe():
    tf = build_transforms(train=True)
    (crop,) = _steps(tf, T.RandomResizedCrop)
    assert crop.size == (224, 224) and crop.scale == (0.08, 1.0) and crop.interpolation == InterpolationMode.BICUBIC
    assert len(_steps(tf, T.RandomHorizontalFlip)) == 1
    (norm,) = _steps(tf, T.Normalize)
    assert tuple(norm.mean) == CLIP_MEAN and tuple(norm.std) == CLIP_STD
    x = tf(Image.new("L", (300, 200), 128))  # grey image: converted to RGB
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32


def test_test_transform_recipe_is_deterministic():
    tf = build_transforms(train=False, image_size=224)
    (resize,) = _steps(tf, T.Resize)
    assert resize.size == 224 and resize.interpolation == InterpolationMode.BICUBIC  # shorter side
    assert _steps(tf, T.CenterCrop)[0].size == (224, 224)
    assert not _steps(tf, T.RandomResizedCrop) and not _steps(tf, T.RandomHorizontalFlip)
    img = Image.new("RGB", (320, 240), (255, 0, 0))
    a, b = tf(img), tf(img)
    assert torch.equal(a, b) and a.shape == (3, 224, 224)
    assert torch.allclose(a[0, 0, 0], torch.tensor((1.0 - CLIP_MEAN[0]) / CLIP_STD[0]))


def test_parameters_come_from_the_backbone_preprocessing(caplog):
    import open_clip

    pre = open_clip.image_transform(224, is_train=False, mean=CLIP_MEAN, std=CLIP_STD)
    assert preprocess_params(pre) == {"image_size": 224, "mean": CLIP_MEAN, "std": CLIP_STD}
    other = T.Compose(
        [
            T.Resize(336, interpolation=InterpolationMode.BILINEAR),
            T.CenterCrop(336),
            T.ToTensor(),
            T.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
        ]
    )
    with caplog.at_level(logging.WARNING):
        tf = build_transforms_from_preprocess(other, train=True)
    assert "bicubic" in caplog.text
    assert _steps(tf, T.RandomResizedCrop)[0].size == (336, 336)  # size and norm taken, recipe kept
    assert _steps(tf, T.RandomResizedCrop)[0].interpolation == InterpolationMode.BICUBIC
    assert tuple(_steps(tf, T.Normalize)[0].mean) == (0.5, 0.5, 0.5)


@pytest.fixture()
def items(tmp_path) -> list[Datum]:
    out = []
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9)]):
        p = tmp_path / f"img_{i}.png"
        Image.new("RGB", (8, 8), colour).save(p)
        out.append(Datum(str(p), i, f"c{i}"))
    return out


def _break(items, i, data=b"definitely not an image"):
    Path(items[i].impath).write_bytes(data)


def test_good_images_load(items):
    ds = ImageDataset(items, build_transforms(train=False, image_size=32))
    x, y = ds[1]
    assert x.shape == (3, 32, 32) and y == 1 and len(ds) == 4 and ds.labels == [0, 1, 2, 3]
    x, y = ImageDataset(items)[0]  # no transform: a plain tensor
    assert x.shape == (3, 8, 8) and float(x[0].mean()) == 1.0


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing"])
def test_bad_image_raises_naming_the_file(items, damage):
    if damage == "garbage":
        _break(items, 2)
    elif damage == "truncated":
        Path(items[2].impath).write_bytes(TINY_JPEG[: len(TINY_JPEG) - 40])
    else:
        Path(items[2].impath).unlink()
    ds = ImageDataset(items, build_transforms(train=False, image_size=16))
    with pytest.raises(DataError) as e:
        ds[2]
    assert items[2].impath in str(e.value) and "\n" not in str(e.value)


def test_skip_bad_logs_each_file_and_substitutes_the_next_item(items, caplog):
    _break(items, 1)
    _break(items, 2)
    ds = ImageDataset(items, build_transforms(train=False, image_size=16), skip_bad=True)
    with caplog.at_level(logging.WARNING, logger="dra.data.image_dataset"):
        x, y = ds[1]
        assert y == 3  # items 1 and 2 are bad: the next readable one, deterministically
        assert ds[2][1] == 3 and ds[0][1] == 0
    logged = [r.getMessage() for r in caplog.records]
    assert sum(items[1].impath in m for m in logged) == 1 and sum(items[2].impath in m for m in logged) == 1
    assert ds.skipped == [items[1].impath, items[2].impath]


def test_skip_bad_with_nothing_readable_still_fails(items):
    for i in range(4):
        _break(items, i)
    with pytest.raises(DataError, match="no readable image"):
        ImageDataset(items, skip_bad=True)[0]


def test_error_in_a_dataloader_worker_names_the_file(items):
    _break(items, 3)
    loader = torch.utils.data.DataLoader(
        ImageDataset(items, build_transforms(train=False, image_size=16)), batch_size=2, num_workers=1
    )
    with pytest.raises(DataError) as e:
        list(loader)
    assert items[3].impath in str(e.value)
