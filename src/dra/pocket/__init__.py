"""The pocket world: a SIMULATION, offline and seeded, where accuracy means something.

A procedural image-caption world (`world`), a tiny CLIP (`ViT-Pocket`) that `dra pocket pretrain`
trains on it (`pretrain`), shipped as `pocket.safetensors` and loaded with `--pretrained pocket`, and
four downstream classification tasks (`datasets`: pocket_shapes, pocket_patterns, pocket_scenes,
pocket_counting). It shows whether DRA learns and how its switches compare here; it says nothing
about real CLIP on real images. See docs/pocket.md.
"""

from __future__ import annotations

from dra.backbones.weights import PACKAGED

MODEL = PACKAGED["pocket"].model
WEIGHTS = PACKAGED["pocket"].path


def available() -> bool:
    return WEIGHTS.is_file()
