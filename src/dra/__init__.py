"""dra: Dynamic Rank Adaptation for CLIP (adapters, benchmark protocols, baselines)."""
from dra.api import create_model, load_model
from dra.config import DRAConfig
from dra.engine.checkpoint import CheckpointError, load_adapters, save_adapters

__version__ = "0.1.0"
__all__ = ["DRAConfig", "CheckpointError", "create_model", "load_model", "load_adapters", "save_adapters"]
