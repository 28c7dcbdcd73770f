"""The pocket world: a SIMULATION, offline and seeded, where accuracy means something.

A procedural image-caption world (`dra.data.generated.world`), a tiny CLIP (`ViT-Pocket-P6`) that
`dra pocket pretrain` trains on it (`pretrain`), shipped as `pocket.safetensors` (read through the
backbone layer's table of packaged weights, `dra.backbones.weights`) and loaded with `--pretrained
pocket`, and twelve downstream classification tasks (`dra.data.generated.pocket`; the benchmark,
`POCKET_BENCHMARK`, is seven of them and asks the paper's question: four compositional splits, a shortcut
task and two shifts; most of it needs a pocket CLIP that sees shapes, which the shipped one does not).
What stays in this package uses the library: pretraining the tiny CLIP (`pretrain`) and probing what it
sees (`probe`). It shows whether DRA learns and how its switches compare here; it says nothing about real
CLIP on real images. See docs/pocket.md.
"""

from __future__ import annotations

from dra.backbones.weights import PACKAGED

MODEL = PACKAGED["pocket"].model
MODELS = ("ViT-Pocket-P6", "ViT-Pocket")
"""The pocket towers `dra pocket pretrain --model` builds (packaged model configs): ViT-Pocket-P6 (the shipped
weights'; 6-px patches, an 8x8 grid) and ViT-Pocket (the earlier tower: 8-px patches, a 6x6 grid, the rest the
same)."""
WEIGHTS = PACKAGED["pocket"].path


def available() -> bool:
    return WEIGHTS.is_file()
