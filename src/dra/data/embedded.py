"""`shapes`: a small dataset the project draws itself, so that every command runs with no data root.

Ten classes of coloured shapes ("red circle", "blue square", ...) on noisy grey backgrounds,
64x64 PNG, 24 train / 8 val / 16 test images per class (480 images, about 2 MB). Every image comes
from its own `random.Random` seeded by a fixed string, so the same code writes the same pixels on
every machine. It is written in CoOp's layout, `shapes/images/<class>/<class>_NNN.png` and
`shapes/split_zhou_Shapes.json`, and read back through the same registry code as EuroSAT.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from dra.data.core import DOCS_HINT, DataError
from dra.drawing import Geometry, draw_shape

GENERATOR_VERSION = "shapes-v1"
IMAGE_SIZE = 64
PER_CLASS = {"train": 24, "val": 8, "test": 16}
SPLIT_FILE = "split_zhou_Shapes.json"
MARKER = ".complete"

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


def class_folder(classname: str) -> str:
    return classname.replace(" ", "_")


def _write(dataset_dir: Path) -> None:
    write_coop_dataset(
        dataset_dir, [c for c, _, _ in SHAPES_CLASSES], PER_CLASS, render_image, SPLIT_FILE, GENERATOR_VERSION
    )


def write_coop_dataset(dataset_dir: Path, classnames, per_class: dict, render, split_file: str, version: str) -> None:
    """Write `images/<class>/<class>_NNN.png` and the CoOp split file; `render(label, index)` draws one image."""
    image_dir = dataset_dir / "images"
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, classname in enumerate(classnames):
        folder = class_folder(classname)
        (image_dir / folder).mkdir(parents=True, exist_ok=True)
        index = 0
        for key, count in per_class.items():
            for _ in range(count):
                rel = f"{folder}/{folder}_{index:03d}.png"
                render(label, index).save(image_dir / rel, format="PNG", compress_level=6)
                split[key].append([rel, label, classname])
                index += 1
    with open(dataset_dir / split_file, "w", encoding="utf-8") as f:
        json.dump(split, f, indent=0)
    (dataset_dir / MARKER).write_text(version + "\n")


def is_complete(dataset_dir: Path, version: str = GENERATOR_VERSION) -> bool:
    marker = Path(dataset_dir) / MARKER
    return marker.is_file() and marker.read_text().strip() == version


def make_shapes(out_root: str | os.PathLike) -> Path:
    """Write `<out_root>/shapes` (CoOp layout) unless a complete copy of this version is there.

    Returns `out_root`, the data root to read it from. Safe to call from several processes at
    once: each writes into a private temporary folder that is renamed into place.
    """
    return make_generated(out_root, "shapes", _write, GENERATOR_VERSION)


def make_generated(out_root: str | os.PathLike, folder: str, write, version: str) -> Path:
    """Write `<out_root>/<folder>` with `write(tmp_dir)` unless a complete copy of `version` is there."""
    root = Path(os.path.abspath(os.path.expanduser(os.fspath(out_root))))
    target = root / folder
    if is_complete(target, version):
        return root
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder}-tmp-", dir=root))
    except OSError as e:
        raise DataError(
            f"{folder}: cannot write the generated dataset to {root} ({e.strerror or e}); "
            f"set DRA_CACHE_DIR to a writable folder; {DOCS_HINT}"
        ) from None
    try:
        write(tmp)
        if target.exists():  # stale (older generator) or half-written: move it aside first
            if is_complete(target, version):
                return root
            old = Path(tempfile.mkdtemp(prefix=f".{folder}-old-", dir=root))
            os.replace(target, old / folder)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not is_complete(target, version):  # another process did not win the race: a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
