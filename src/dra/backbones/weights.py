"""Weights that ship inside the package, by their `--pretrained` name: the file, the model it belongs to,
and what to do when it is missing. The backbone layer reads this table; it knows nothing of how a file
was made (the pocket CLIP's comes from `dra pocket pretrain --ship`, which writes it here).

    load_backbone("ViT-Pocket-P6", "pocket")   # reads PACKAGED["pocket"].path
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dra.backbones.base import BackboneError

_PACKAGE = Path(__file__).resolve().parent.parent  # src/dra: package data (pyproject's package-data lists it)


@dataclass(frozen=True)
class PackagedWeights:
    name: str
    """The `--pretrained` value that names these weights."""
    path: Path
    model: str
    """The open_clip model (a packaged model config) the weights belong to."""
    about: str
    """What the weights are, for messages."""
    make: str
    """How to make (and ship) the file when it is not installed."""
    settings: str
    """Where the settings that fit these weights are."""


PACKAGED = {
    "pocket": PackagedWeights(
        name="pocket",
        path=_PACKAGE / "pocket" / "pocket.safetensors",
        model="ViT-Pocket-P6",
        about="the pocket world's tiny CLIP",
        make="`dra pocket pretrain --ship` (see docs/pocket.md)",
        settings="--config pocket for the pocket benchmark's settings",
    ),
}


def packaged(pretrained) -> PackagedWeights | None:
    """The table's entry for a `--pretrained` value, or None when it names no packaged weights."""
    return PACKAGED.get(str(pretrained)) if pretrained is not None else None


def packaged_file(entry: PackagedWeights, model_name: str) -> Path:
    """The entry's file for `model_name`; a BackboneError naming the fix when it does not apply or is missing."""
    if model_name != entry.model:
        raise BackboneError(
            f"--pretrained {entry.name} is {entry.about} ({entry.model}), not {model_name}: pass "
            f"--model {entry.model}, or {entry.settings}"
        )
    if not entry.path.is_file():
        raise BackboneError(
            f"the weights of {entry.about} are not installed ({entry.path}); make them with {entry.make}"
        )
    return entry.path
