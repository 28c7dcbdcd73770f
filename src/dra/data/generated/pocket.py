"""The pocket benchmark (a SIMULATION): seven classification tasks drawn from the pocket world
(`world.py`), four of them the benchmark (`POCKET_BENCHMARK`: pocket_scenes, pocket_colours,
pocket_objects, pocket_dusk) and three registered but left out of it (pocket_shapes, pocket_patterns,
pocket_counting: the shipped tiny CLIP is at chance on them).

Each dataset asks for one attribute of a scene; its class names are phrases the captions use, read
through the benchmark's template ("a photo of a {}."). The other attributes vary at random, and every
image is drawn under `world.DOWNSTREAM_SHIFT` (palette jitter and desaturation, noise, blur, clutter
strokes; some tasks a stronger or tinted shift), which pretraining never saw: zero-shot is imperfect and few-shot adaptation has room.

Written like `shapes` (CoOp layout, `<folder>/images/<class>/<class>_NNN.png` + `split_zhou_<Name>.json`,
32 train / 8 val / 50 test images per class) into the data cache on first use (the catalogue's
`generate` hook: `make_pocket_dataset`), and read back by the registry like any dataset; base/new halves and few-shot draws are the benchmark's own.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dra.data.generated import world
from dra.data.generated.write import make_generated, write_coop_dataset

VERSION = f"{world.GENERATOR_VERSION}/datasets-v4"
PER_CLASS = {"train": 32, "val": 8, "test": 50}


@dataclass(frozen=True)
class PocketDataset:
    name: str  # registry name, also the folder
    title: str
    split_name: str  # split_zhou_<split_name>.json
    classnames: tuple[str, ...]
    scene_of: Callable[[int, random.Random], world.Scene]  # the scene of class `label`
    shift: world.Shift = world.DOWNSTREAM_SHIFT
    benchmark: bool = True  # in the pocket benchmark (POCKET_BENCHMARK); False: registered, not in it

    @property
    def split_file(self) -> str:
        return f"split_zhou_{self.split_name}.json"

    @property
    def counts(self) -> tuple[int, int, int]:
        return tuple(PER_CLASS[k] * len(self.classnames) for k in ("train", "val", "test"))


def _shapes(label: int, rng: random.Random) -> world.Scene:
    return world.random_scene(rng, shape=world.SHAPES[label], count=rng.randint(1, 3))


def _patterns(label: int, rng: random.Random) -> world.Scene:
    return world.random_scene(rng, pattern=world.PATTERNS[label], size="large", count=rng.randint(1, 2))


def _scenes(label: int, rng: random.Random) -> world.Scene:
    return world.random_scene(rng, background=world.SCENES[label])


def _colours(label: int, rng: random.Random) -> world.Scene:
    return world.random_scene(rng, colour=list(world.COLOURS)[label])


OBJECT_COLOURS = ("red", "blue", "yellow", "white")
OBJECT_SCENES = ("grass field", "brick wall", "night sky", "sandy beach")


def _objects(label: int, rng: random.Random) -> world.Scene:
    colour, background = OBJECT_COLOURS[label // len(OBJECT_SCENES)], OBJECT_SCENES[label % len(OBJECT_SCENES)]
    return world.random_scene(rng, colour=colour, background=background)


def _counting(label: int, rng: random.Random) -> world.Scene:
    return world.random_scene(rng, count=label + 1)


POCKET_DATASETS: dict[str, PocketDataset] = {
    d.name: d
    for d in (
        # The benchmark: attributes the shipped tiny CLIP has learned (backgrounds, colours), under shifts.
        PocketDataset(
            "pocket_scenes", "Pocket-Scenes (simulation)", "PocketScenes", world.SCENES, _scenes, world.STRONG_SHIFT
        ),
        PocketDataset(
            "pocket_colours",
            "Pocket-Colours (simulation)",
            "PocketColours",
            tuple(f"{c} object" for c in world.COLOURS),
            _colours,
            world.COLD_LAMP_SHIFT,  # colour constancy: the same bluish cast on every image
        ),
        PocketDataset(
            "pocket_objects",
            "Pocket-Objects (simulation)",
            "PocketObjects",
            tuple(f"{c} object on a {b}" for c in OBJECT_COLOURS for b in OBJECT_SCENES),
            _objects,
            world.STRONG_SHIFT,
        ),
        PocketDataset("pocket_dusk", "Pocket-Dusk (simulation)", "PocketDusk", world.SCENES, _scenes, world.DUSK_SHIFT),
        # Registered, not in the benchmark: the shipped CLIP is at chance on them (see docs/pocket.md).
        PocketDataset(
            "pocket_shapes", "Pocket-Shapes (simulation)", "PocketShapes", world.SHAPES, _shapes, benchmark=False
        ),
        PocketDataset(
            "pocket_patterns",
            "Pocket-Patterns (simulation)",
            "PocketPatterns",
            tuple(f"{p} object" for p in world.PATTERNS),
            _patterns,
            benchmark=False,
        ),
        PocketDataset(
            "pocket_counting",
            "Pocket-Counting (simulation)",
            "PocketCounting",
            tuple(f"{w} object" if i == 0 else f"{w} objects" for i, w in enumerate(world.COUNT_WORDS)),
            _counting,
            benchmark=False,
        ),
    )
}
POCKET_BENCHMARK = tuple(n for n, d in POCKET_DATASETS.items() if d.benchmark)


def render_item(name: str, label: int, index: int, shift: world.Shift | None = None):
    """Image `index` of class `label` of pocket dataset `name` (under its shift): a pure function of the three."""
    spec = POCKET_DATASETS[name]
    rng = random.Random(f"{VERSION}/{name}/{label}/{index}")
    return world.render(spec.scene_of(label, rng), rng, spec.shift if shift is None else shift)


def make_pocket_dataset(name: str, out_root: str | os.PathLike) -> Path:
    """Write `<out_root>/<name>` in CoOp's layout (once per generator version); returns `out_root`."""
    spec = POCKET_DATASETS[name]

    def write(tmp: Path) -> None:
        write_coop_dataset(
            tmp, spec.classnames, PER_CLASS, lambda label, i: render_item(name, label, i), spec.split_file, VERSION
        )

    return make_generated(out_root, name, write, VERSION)
