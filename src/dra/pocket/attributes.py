"""The attributes of the pocket world's scenes as words (a SIMULATION): their values in a fixed order and
the noun phrase a caption uses for each. The probe asks about them (`probe`) and the `attributes`
pretraining recipe contrasts images with them (`pretrain`).
"""

from __future__ import annotations

from dra.data.generated import world

ATTRIBUTES = ("shape", "colour", "pattern", "size", "count", "background")
_OBJECT = "object"  # the grammar's generic noun for an object whose shape is left out


def values(attribute: str) -> tuple:
    """The values of `attribute`, as the world defines them (count: the integers 1 .. MAX_COUNT)."""
    return {
        "shape": world.SHAPES,
        "colour": tuple(world.COLOURS),
        "pattern": world.PATTERNS,
        "size": world.SIZES,
        "count": tuple(range(1, world.MAX_COUNT + 1)),
        "background": world.SCENES,
    }[attribute]


def phrase(attribute: str, value) -> str:
    """The noun phrase a caption uses for one value: "circle", "red object", "two objects", "snow field"."""
    if attribute in ("shape", "background"):
        return str(value)
    if attribute == "count":
        word = world.COUNT_WORDS[int(value) - 1]
        return f"{word} {_OBJECT if value == 1 else world.plural(_OBJECT)}"
    return f"{value} {_OBJECT}"
