"""dra: Dynamic Rank Adaptation for CLIP (adapters, benchmark protocols, baselines).

The names below load on first use, so that `import dra.data` does not pay for open_clip.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "DRAConfig": "dra.config",
    "create_model": "dra.api",
    "load_model": "dra.api",
    "predict": "dra.api",
    "CheckpointError": "dra.checkpoints",
    "load_adapters": "dra.checkpoints",
    "save_adapters": "dra.checkpoints",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dra' has no attribute {name!r}")
