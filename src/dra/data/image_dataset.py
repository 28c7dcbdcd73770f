"""A torch `Dataset` over `Datum` lists, with clear errors for bad images and an opt-in skip."""

from __future__ import annotations

import logging
from typing import Callable, Optional, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

from dra.data.core import DOCS_HINT, DataError, Datum

log = logging.getLogger(__name__)


def _scaled_to_8bit(values, scale: float) -> Image.Image:
    """A greyscale 8-bit image of `values * scale`, rounded and clipped to 0..255."""
    import numpy as np

    return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), mode="L")


def _high_bit_depth_to_8bit(im: Image.Image) -> Image.Image:
    """Greyscale 16-bit, 32-bit integer or float images as 8-bit greyscale, by their range.

    `convert("RGB")` clips these to 0..255 (a 16-bit image turns white, a float one black). Here:
    16-bit (`I;16*`) and 32-bit integer images whose values fit 0..65535 scale 65535 -> 255; other
    32-bit integer images with values >= 0 scale 2**31 - 1 -> 255; float images with values in [0, 1]
    scale 1 -> 255. Any other range (negative, NaN, a float above 1) raises `ValueError`.
    """
    import numpy as np

    values = np.asarray(im).astype(np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if im.mode == "F":
        if not (np.isfinite(values).all() and low >= 0.0 and high <= 1.0):
            raise ValueError(
                f"float image with values in [{low:g}, {high:g}], expected [0, 1]; save it as 8-bit (or 16-bit) PNG"
            )
        return _scaled_to_8bit(values, 255.0)
    if low < 0:
        raise ValueError(f"{im.mode} image with negative values ({low:g}); save it as 8-bit (or 16-bit) PNG")
    top = 65535.0 if im.mode.startswith("I;16") or high <= 65535 else float(2**31 - 1)
    return _scaled_to_8bit(values, 255.0 / top)


HIGH_BIT_DEPTH_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")


def to_rgb(im: Image.Image) -> Image.Image:
    """`im` as 8-bit RGB; high-bit-depth greyscale is scaled by its range, not clipped."""
    if im.mode in HIGH_BIT_DEPTH_MODES:
        im = _high_bit_depth_to_8bit(im)
    return im.convert("RGB")


def load_image(path: str) -> Image.Image:
    """The image at `path`, fully decoded, in RGB. Raises `DataError` naming the file on any failure."""
    try:
        with Image.open(path) as im:
            return to_rgb(im)  # loads every pixel: truncated files fail here
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, ValueError, SyntaxError, DecompressionBombError...
        reason = f"{type(e).__name__}: {e}".replace("\n", " ")
        raise DataError(
            f"cannot read image {path} ({reason}); fix or remove it, `dra data check --decode` lists every "
            f"bad file, training can skip bad files with train.skip_bad_images=true; {DOCS_HINT}"
        ) from None


class ImageDataset(Dataset):
    """`items[i]` -> `(transform(image), label)`.

    With `seed`, the random transform of item i is seeded by (seed, epoch, i) (`set_epoch`), so a
    training run's images are the same with any number of DataLoader workers.

    A missing, corrupt or truncated image raises `DataError` naming the file. With
    `skip_bad=True` the file is logged (`logging.warning`, once per file per process) and the
    next readable item in the list (i+1, i+2, ..., wrapping around) is returned instead, so a run
    carries on with a deterministic substitute; `skipped` holds the bad paths this process saw.
    """

    def __init__(
        self,
        items: Sequence[Datum],
        transform: Optional[Callable] = None,
        skip_bad: bool = False,
        seed: Optional[int] = None,
    ):
        self.items = list(items)
        self.transform = transform
        self.skip_bad = skip_bad
        self.seed = seed
        self.epoch = 0
        self.skipped: list[str] = []
        self._bad: set[int] = set()

    def set_epoch(self, epoch: int) -> None:
        """With a `seed`, item i's random transform in epoch e depends on (seed, e, i) alone."""
        self.epoch = epoch

    def _transform(self, image, index: int):
        if self.seed is None:
            return self.transform(image)
        # Per-item seeding: the same augmentation whichever process (main or DataLoader worker) loads the
        # item, so results do not depend on train.num_workers; the caller's RNG is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index) % 2**63)
            return self.transform(image)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> list[int]:
        return [d.label for d in self.items]

    def _load(self, index: int):
        datum = self.items[index]
        image = load_image(datum.impath)
        if self.transform is not None:
            image = self._transform(image, index)
        else:
            from torchvision.transforms.functional import to_tensor

            image = to_tensor(image)
        return image, datum.label

    def __getitem__(self, index: int):
        if not self.skip_bad:
            return self._load(index)
        n = len(self.items)
        for step in range(n):
            j = (index + step) % n
            if j in self._bad:
                continue
            try:
                return self._load(j)
            except DataError as e:
                self._bad.add(j)
                self.skipped.append(self.items[j].impath)
                log.warning("skipping bad image %s (item %d): %s", self.items[j].impath, j, e)
        raise DataError(
            f"no readable image among the {n} items of this dataset (first: {self.items[0].impath if n else '-'}); {DOCS_HINT}"
        )
