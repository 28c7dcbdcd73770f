"""How a method reads a checkpoint of its authors' code: the key map and the config its tensors imply.

A method that can import official checkpoints (Dassl's `model.pth.tar-N`) sets `official_layout` on its
class, in its own file beside the model (as timm keeps `checkpoint_filter_fn` in the model's file);
`dra.checkpoints.convert` reads the file and applies the layout. A key map returns, for an official
key: the dra key, `FROZEN` (frozen CLIP weights the checkpoint also holds: skipped) or None (no place
for it in this method: the import fails naming the key). The config function reads the method's
config from the mapped tensors (blocks, widths, lengths); a ValueError there names what does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

FROZEN = ""
"""What a key map returns for a key of the official checkpoint that holds frozen CLIP weights."""


@dataclass(frozen=True)
class OfficialLayout:
    source: str
    """The official code whose checkpoints these are (a GitHub repository)."""
    key: Callable[[str], str | None]
    """Official key -> dra key, FROZEN (skipped) or None (not this method's)."""
    config: Callable[[dict], dict]
    """The mapped tensors -> the method config (fields of its config class) they imply."""
