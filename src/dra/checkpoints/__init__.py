"""The library's checkpoints: the adapter-only format (`format.py`), rebuilding a model from one
(`rebuild.py`: `dra.load_model`) and converting the methods' official checkpoints (`convert.py`).

This layer sits above the methods (it builds them) and below the engine (the trainer saves with it).
`load_model` loads on first use, so that reading the format does not pay for open_clip.
"""

from __future__ import annotations

from dra.checkpoints.format import CheckpointError, load_adapters, read_checkpoint, save_adapters

__all__ = ["CheckpointError", "load_adapters", "load_model", "read_checkpoint", "save_adapters"]


def __getattr__(name: str):
    if name == "load_model":
        from dra.checkpoints.rebuild import load_model

        return load_model
    raise AttributeError(f"module 'dra.checkpoints' has no attribute {name!r}")
