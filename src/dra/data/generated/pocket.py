"""The pocket benchmark (a SIMULATION): twelve classification tasks drawn from the pocket world
(`world.py`). Seven are the benchmark (`POCKET_BENCHMARK`, the datasets flagged `benchmark`, in this
order), the paper's question (issue #17): four compositional splits (pocket_colour_shape,
pocket_pattern_shape, pocket_count_colour, pocket_colour_scene: new classes are unseen combinations of
seen values), one mechanism (pocket_shortcut: the base classes' training images sit on a background of
their own) and two shifts (pocket_dusk, pocket_colours: the same darkening or colour cast on every
image). Five are registered but left out of it: pocket_scenes and pocket_objects (the benchmark before
datasets-v5, with the two shifts; pocket_scenes has pocket_dusk's classes and split) and pocket_shapes,
pocket_patterns, pocket_counting (the shipped tiny CLIP is at chance on them). `kind` says which
(`KINDS`). Most of the benchmark needs a pocket CLIP that sees shapes, patterns and counts; the shipped
one sees backgrounds and colours.

Each dataset asks for one attribute of a scene (the five of `compositional.py`: a combination of two);
its class names are phrases the captions use, read through the benchmark's template ("a photo of a
{}."). The other attributes vary at random, and every image is drawn under `world.DOWNSTREAM_SHIFT`
(palette jitter and desaturation, noise, blur, clutter strokes; some tasks a stronger or tinted
shift), which pretraining never saw: zero-shot is imperfect and few-shot adaptation has room.

Written like `shapes` (CoOp layout, `<folder>/images/<class>/<class>_NNN.png` + `split_zhou_<Name>.json`;
every benchmark dataset 32 train / 16 val / 200 test images per class, the five others 32 / 8 / 50) into
the data cache on first use (the catalogue's `generate` hook: `make_pocket_dataset`), and read back by the
registry like any dataset; base/new halves (the first ceil(n/2) classes are base) and few-shot draws are
the benchmark's own.

Every dataset has two draws of the same classes and split: the test draw (`pocket_<x>`, the reported
benchmark) and the dev draw (`pocket_<x>@dev`, another generator seed, for tuning), see `DRAWS`.
"""

from __future__ import annotations

import functools
import os
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from dra.data.fewshot import base_count
from dra.data.generated import compositional as C
from dra.data.generated import world
from dra.data.generated.write import make_generated, write_coop_dataset

VERSION = f"{world.GENERATOR_VERSION}/datasets-v5"  # the written files (the cache marker): a bump rewrites them
# The images' seeds (change them, e.g. to VERSION, only to redraw every image). datasets-v5 changed what is
# written (pocket_dusk, pocket_colours: 16 val / 200 test images per class), not the images: image `index`
# of a class is still the one datasets-v4 drew.
SEED_VERSION = f"{world.GENERATOR_VERSION}/datasets-v4"
PER_CLASS = {"train": 32, "val": 8, "test": 50}  # the registered tasks outside the benchmark
BENCHMARK_PER_CLASS = {"train": 32, "val": 16, "test": 200}  # every benchmark dataset
KINDS = {
    "compositional": "new classes are unseen combinations of seen attribute values (compositional.py)",
    "mechanism": "the base classes' training images carry a shortcut (pocket_shortcut)",
    "shift": "classes are values of attributes the shipped CLIP knows, under a distribution shift",
    "attribute": "classes are values of one attribute the shipped CLIP does not see yet",
}
DRAWS = ("test", "dev")  # the reported draw, the tuning draw (registry name `<name>@dev`)
DEV_SUFFIX = "@dev"


@dataclass(frozen=True)
class PocketDataset:
    name: str  # registry name, also the folder
    title: str
    split_name: str  # split_zhou_<split_name>.json
    classnames: tuple[str, ...]
    scene_of: Callable[[int, random.Random], world.Scene]  # the scene of class `label`
    shift: world.Shift = world.DOWNSTREAM_SHIFT
    benchmark: bool = True  # in the pocket benchmark (POCKET_BENCHMARK); False: registered, not in it
    kind: str = "attribute"  # what the dataset asks (KINDS)
    per_class: dict = field(default_factory=lambda: dict(PER_CLASS), hash=False)  # train / val / test per class
    shortcut: bool = False  # base classes' TRAIN images on one background per class (SHORTCUT_BACKGROUNDS)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")

    @property
    def split_file(self) -> str:
        return f"split_zhou_{self.split_name}.json"

    @property
    def counts(self) -> tuple[int, int, int]:
        return tuple(self.per_class[k] * len(self.classnames) for k in ("train", "val", "test"))

    @property
    def base_classes(self) -> tuple[str, ...]:
        """The benchmark's base half (`dra.data.fewshot.base_count`: the first ceil(n/2) classes)."""
        return self.classnames[: base_count(len(self.classnames))]

    @property
    def new_classes(self) -> tuple[str, ...]:
        return self.classnames[len(self.base_classes) :]

    def split_of(self, index: int, per_class: dict | None = None) -> str:
        """The split (train / val / test) image `index` of a class is in: written in that order, `per_class`
        (default: this dataset's) images each."""
        counts = self.per_class if per_class is None else per_class
        end = 0
        for key in ("train", "val", "test"):
            end += counts[key]
            if index < end:
                return key
        raise IndexError(f"{self.name}: image index {index} past the {sum(counts.values())} images of a class")


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


def _compositional(name: str, title: str, split_name: str, comp: C.Composition) -> PocketDataset:
    return PocketDataset(
        name,
        f"{title} (simulation)",
        split_name,
        comp.classnames,
        comp.scene_of,
        kind="compositional",
        per_class=dict(BENCHMARK_PER_CLASS),
    )


# The benchmark first, in its order (POCKET_BENCHMARK reads it from here), then the registered rest.
POCKET_DATASETS: dict[str, PocketDataset] = {
    d.name: d
    for d in (
        # The paper's question (compositional.py): new classes are unseen combinations of seen values.
        _compositional("pocket_colour_shape", "Pocket-ColourShape", "PocketColourShape", C.COLOUR_SHAPE),
        _compositional("pocket_pattern_shape", "Pocket-PatternShape", "PocketPatternShape", C.PATTERN_SHAPE),
        _compositional("pocket_count_colour", "Pocket-CountColour", "PocketCountColour", C.COUNT_COLOUR),
        _compositional("pocket_colour_scene", "Pocket-ColourScene", "PocketColourScene", C.COLOUR_SCENE),
        # The mechanism (the paper's Fig. 1): base classes' few-shot training images share a background.
        PocketDataset(
            "pocket_shortcut",
            "Pocket-Shortcut (simulation)",
            "PocketShortcut",
            C.SHORTCUT.classnames,
            C.SHORTCUT.scene_of,
            kind="mechanism",
            per_class=dict(BENCHMARK_PER_CLASS),
            shortcut=True,
        ),
        # Two shifts that are the same on every image (learnable from few shots): dusk, a cold lamp.
        PocketDataset(
            "pocket_dusk",
            "Pocket-Dusk (simulation)",
            "PocketDusk",
            world.SCENES,
            _scenes,
            world.DUSK_SHIFT,
            kind="shift",
            per_class=dict(BENCHMARK_PER_CLASS),
        ),
        PocketDataset(
            "pocket_colours",
            "Pocket-Colours (simulation)",
            "PocketColours",
            tuple(f"{c} object" for c in world.COLOURS),
            _colours,
            world.COLD_LAMP_SHIFT,  # colour constancy: the same bluish cast on every image
            kind="shift",
            per_class=dict(BENCHMARK_PER_CLASS),
        ),
        # Registered, not in the benchmark. The benchmark before datasets-v5 (with pocket_dusk and
        # pocket_colours): attributes the shipped tiny CLIP has learned (backgrounds, colours), under shifts;
        # pocket_scenes has pocket_dusk's classes and split, so only one of the two can be in the benchmark.
        PocketDataset(
            "pocket_scenes",
            "Pocket-Scenes (simulation)",
            "PocketScenes",
            world.SCENES,
            _scenes,
            world.STRONG_SHIFT,
            benchmark=False,
            kind="shift",
        ),
        PocketDataset(
            "pocket_objects",
            "Pocket-Objects (simulation)",
            "PocketObjects",
            tuple(f"{c} object on a {b}" for c in OBJECT_COLOURS for b in OBJECT_SCENES),
            _objects,
            world.STRONG_SHIFT,
            benchmark=False,
            kind="shift",
        ),
        # One attribute the shipped CLIP is at chance on (see docs/pocket.md).
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
COMPOSITIONAL = {
    "pocket_colour_shape": C.COLOUR_SHAPE,
    "pocket_pattern_shape": C.PATTERN_SHAPE,
    "pocket_count_colour": C.COUNT_COLOUR,
    "pocket_colour_scene": C.COLOUR_SCENE,
    "pocket_shortcut": C.SHORTCUT,
}  # the datasets whose classes are combinations (`compositional.Composition`), for tests and analyses


def draw_name(name: str, draw: str = "test") -> str:
    """The registry name (and cache folder) of a draw: `pocket_x` (test) or `pocket_x@dev`."""
    if draw not in DRAWS:
        raise ValueError(f"draw must be one of {', '.join(DRAWS)}, not {draw!r}")
    return name if draw == "test" else name + DEV_SUFFIX


def scene_item(
    name: str, label: int, index: int, draw: str = "test", per_class: dict | None = None
) -> tuple[world.Scene, random.Random]:
    """The scene of image `index` of class `label` (and the rng that draws it): a pure function of them.

    The test draw is seeded as it always was (`SEED_VERSION`); the dev draw by another seed. In a shortcut dataset a base
    class's training images are moved onto that class's background (`compositional.SHORTCUT_BACKGROUNDS`);
    `per_class` (default: the dataset's) says which indices are training images.
    """
    spec = POCKET_DATASETS[name]
    draw_name(name, draw)  # validates `draw`
    seed = f"{SEED_VERSION}/{name}/{label}/{index}"
    if draw != "test":
        seed = f"{SEED_VERSION}/{name}/{draw}/{label}/{index}"
    rng = random.Random(seed)
    scene = spec.scene_of(label, rng)
    if spec.shortcut and label < len(spec.base_classes) and spec.split_of(index, per_class) == "train":
        scene = replace(scene, background=C.SHORTCUT_BACKGROUNDS[label])
    return scene, rng


def render_item(
    name: str,
    label: int,
    index: int,
    shift: world.Shift | None = None,
    draw: str = "test",
    per_class: dict | None = None,
):
    """Image `index` of class `label` of pocket dataset `name` (under its shift) in `draw`: a pure function."""
    scene, rng = scene_item(name, label, index, draw, per_class)
    return world.render(scene, rng, POCKET_DATASETS[name].shift if shift is None else shift)


def make_pocket_dataset(
    name: str,
    out_root: str | os.PathLike,
    draw: str = "test",
    per_class: dict | None = None,
    test_per_class: int | None = None,
) -> Path:
    """Write `<out_root>/<draw_name(name, draw)>` in CoOp's layout (once per generator version); returns
    `out_root`. `per_class` (tests) writes fewer images per class; the marker records it.

    `test_per_class` (a run that scores only the first n test images of each class, `dra demo`): a copy with
    at least n test images per class is enough, else one with exactly n is written. Its images are the full
    dataset's (each a pure function of class and index; the test images come last), so its first n test
    images per class are the full dataset's too; a later run that needs them all writes the full dataset."""
    spec = POCKET_DATASETS[name]
    counts = dict(spec.per_class if per_class is None else per_class)
    version = full = VERSION if per_class is None else f"{VERSION}/{counts}"
    accepts = None
    if test_per_class is not None:
        accepts = functools.partial(has_test_prefix, full=full, test_per_class=test_per_class)
        if test_per_class < counts["test"]:
            counts["test"] = test_per_class
            version = f"{full}{PREFIX_MARK}{test_per_class}"

    def write(tmp: Path) -> None:
        write_coop_dataset(
            tmp,
            spec.classnames,
            counts,
            lambda label, i: render_item(name, label, i, draw=draw, per_class=counts),
            spec.split_file,
            version,
        )

    return make_generated(out_root, draw_name(name, draw), write, version, accepts)


PREFIX_MARK = "/test_per_class="  # the marker of a copy with only the first n test images per class


def has_test_prefix(written: str, full: str, test_per_class: int) -> bool:
    """Whether a copy marked `written` holds the first `test_per_class` test images of every class of the
    dataset whose complete copy is marked `full`."""
    if written == full:
        return True
    stem, mark, n = written.partition(PREFIX_MARK)
    return stem == full and mark == PREFIX_MARK and n.isdigit() and int(n) >= test_per_class
