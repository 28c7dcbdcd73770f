"""`shapes`: a small dataset the project draws itself, so that every command runs with no data root.

Ten classes of coloured shapes ("red circle", "blue square", ...) on noisy grey backgrounds,
64x64 PNG, 24 train / 8 val / 16 test images per class (480 images, about 2 MB). Every image comes
from its own `random.Random` seeded by a fixed string, so the same code writes the same pixels on
every machine. It is written in CoOp's layout, `shapes/images/<class>/<class>_NNN.png` and
`shapes/split_zhou_Shapes.json`, and read back through the same registry code as EuroSAT (the
catalogue's `generate` hook for `shapes` is `make_shapes`).
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

from PIL import Image, ImageDraw

from dra.data.generated.write import make_generated, write_coop_dataset
from dra.drawing import Geometry, draw_shape

GENERATOR_VERSION = "shapes-v1"
IMAGE_SIZE = 64
PER_CLASS = {"train": 24, "val": 8, "test": 16}
SPLIT_FILE = "split_zhou_Shapes.json"

# (class name, RGB colour, shape): names are what the text encoder reads.
SHAPES_CLASSES: list[tuple[str, tuple[int, int, int], str]] = [
    ("red circle", (220, 30, 30), "circle"),
    ("blue square", (30, 70, 220), "square"),
    ("green triangle", (30, 170, 50), "triangle"),
    ("yellow star", (240, 210, 20), "star"),
    ("purple cross", (140, 40, 180), "cross"),
    ("orange diamond", (250, 130, 20), "diamond"),
    ("cyan hexagon", (20, 200, 210), "hexagon"),
    ("white ring", (250, 250, 250), "ring"),
    ("black arrow", (15, 15, 15), "arrow"),
    ("pink crescent", (245, 120, 190), "crescent"),
]
SHAPES_COUNTS = tuple(PER_CLASS[k] * len(SHAPES_CLASSES) for k in ("train", "val", "test"))

_SS = 4  # supersampling of the shape mask, for smooth edges


# The embedded set's proportions (its pixels depend on them; the pocket world has its own).
_GEOMETRY = Geometry(
    scale=1.15, star_inner=0.42, hexagon=1.0, cross_arm=0.36, arrow_shaft=0.25, arrow_head=0.65, crescent_offset=0.45
)


def _shape_mask(shape: str, rng: random.Random) -> Image.Image:
    size = IMAGE_SIZE * _SS
    mask = Image.new("L", (size, size), 0)
    r = rng.uniform(0.19, 0.30) * size
    cx = rng.uniform(r + 0.04 * size, size - r - 0.04 * size)
    cy = rng.uniform(r + 0.04 * size, size - r - 0.04 * size)
    tilt = math.radians(rng.uniform(-15, 15))  # small, so a square never turns into a diamond
    spin = rng.uniform(0, 2 * math.pi)
    draw_shape(ImageDraw.Draw(mask), shape, cx, cy, r, tilt, spin, geometry=_GEOMETRY)
    return mask.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX)


def render_image(class_index: int, image_index: int) -> Image.Image:
    """Image `image_index` of class `class_index`: a pure function of its two indices."""
    _, colour, shape = SHAPES_CLASSES[class_index]
    rng = random.Random(f"{GENERATOR_VERSION}/{class_index}/{image_index}")
    grey = rng.randint(85, 170)
    tint = [max(0, min(255, grey + rng.randint(-18, 18))) for _ in range(3)]
    background = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), tuple(tint))
    noise = Image.frombytes("RGB", (IMAGE_SIZE, IMAGE_SIZE), rng.randbytes(IMAGE_SIZE * IMAGE_SIZE * 3))
    image = Image.blend(background, noise, 0.15)
    fill = tuple(max(0, min(255, c + rng.randint(-20, 20))) for c in colour)
    image.paste(fill, (0, 0), _shape_mask(shape, rng))
    return image


def _write(dataset_dir: Path) -> None:
    write_coop_dataset(
        dataset_dir, [c for c, _, _ in SHAPES_CLASSES], PER_CLASS, render_image, SPLIT_FILE, GENERATOR_VERSION
    )


def make_shapes(out_root: str | os.PathLike) -> Path:
    """Write `<out_root>/shapes` (CoOp layout) unless a complete copy of this version is there.

    Returns `out_root`, the data root to read it from. Safe to call from several processes at
    once: each writes into a private temporary folder that is renamed into place.
    """
    return make_generated(out_root, "shapes", _write, GENERATOR_VERSION)
