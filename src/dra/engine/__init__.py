"""Training loop, evaluation and checkpoints."""

from dra.engine.checkpoint import CheckpointError, load_adapters, read_checkpoint, save_adapters

__all__ = ["CheckpointError", "load_adapters", "read_checkpoint", "save_adapters"]
