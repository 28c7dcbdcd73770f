"""Compositional pocket tasks (a SIMULATION), in the spirit of CLEVR-CoGenT: a class is a combination of
two attribute values (colour x shape, pattern x shape, count x colour, colour x background); base and
new classes are disjoint combinations, and every value of a new class appears in some base class: the
new classes are unseen combinations of seen values.

The split is a checkerboard over the grid of values: combination (i, j) is base when i + j is even.
With at least two values per attribute every row and every column holds a base cell, and an even grid
splits into two equal halves. The class list is the base cells (row by row), then the new cells, so
that the benchmark's first-half rule (`dra.data.fewshot.base_new_labels`) reads the split back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from dra.data.generated import world


def _object_phrase(a, b) -> str:  # ("red", "circle") -> "red circle"
    return f"{a} {b}"


@dataclass(frozen=True)
class Composition:
    """Classes = combinations of two scene attributes' values; the other attributes random or `fixed`."""

    attributes: tuple[str, str]  # `world.Scene` fields, e.g. ("colour", "shape")
    values: tuple[tuple, tuple]  # the values of each attribute used here
    phrase: Callable[[object, object], str] = _object_phrase  # the class name of a combination
    fixed: dict = field(default_factory=dict)  # other attributes held fixed (e.g. one large object)

    def combinations(self) -> tuple[tuple, ...]:
        """(a, b) per class label: the base cells (i + j even), then the new cells, each row by row."""
        cells = [(i, j) for i in range(len(self.values[0])) for j in range(len(self.values[1]))]
        ordered = [c for c in cells if sum(c) % 2 == 0] + [c for c in cells if sum(c) % 2 == 1]
        return tuple((self.values[0][i], self.values[1][j]) for i, j in ordered)

    @property
    def classnames(self) -> tuple[str, ...]:
        return tuple(self.phrase(a, b) for a, b in self.combinations())

    def scene_of(self, label: int, rng: random.Random) -> world.Scene:
        a, b = self.combinations()[label]
        return world.random_scene(rng, **self.fixed, **{self.attributes[0]: a, self.attributes[1]: b})


def _counted(count: int, colour: str) -> str:  # (2, "red") -> "two red objects"
    word = world.COUNT_WORDS[count - 1]
    return f"{word} {colour} object" if count == 1 else f"{word} {colour} objects"


def _on_background(colour: str, background: str) -> str:  # the phrasing of pocket_objects
    return f"{colour} object on a {background}"


COLOUR_SHAPE = Composition(
    ("colour", "shape"),
    (("red", "blue", "yellow", "green"), ("circle", "square", "triangle", "star", "cross", "heart")),
    fixed={"count": 1},
)
PATTERN_SHAPE = Composition(
    ("pattern", "shape"),
    (("striped", "dotted", "checkered", "outlined"), ("circle", "square", "triangle", "star", "hexagon", "heart")),
    fixed={"count": 1, "size": "large"},  # patterns need room
)
COUNT_COLOUR = Composition(
    ("count", "colour"),
    ((1, 2, 3, 4), ("red", "green", "blue", "yellow", "white", "purple")),
    phrase=_counted,
    fixed={"size": "small"},
)
COLOUR_SCENE = Composition(
    ("colour", "background"),
    (
        ("red", "blue", "yellow", "white", "green"),
        ("grass field", "brick wall", "night sky", "sandy beach", "snow field", "wooden floor"),
    ),
    phrase=_on_background,
)
# The shortcut task's classes (a 4 x 4 grid: 8 base classes, one background each in training).
SHORTCUT = Composition(
    ("colour", "shape"),
    (("red", "blue", "yellow", "white"), ("circle", "square", "star", "hexagon")),
    fixed={"count": 1},
)
SHORTCUT_BACKGROUNDS = world.SCENES  # base class k's training images: on SCENES[k]; every other image random

__all__ = [
    "Composition",
    "COLOUR_SHAPE",
    "PATTERN_SHAPE",
    "COUNT_COLOUR",
    "COLOUR_SCENE",
    "SHORTCUT",
    "SHORTCUT_BACKGROUNDS",
]
