"""The pocket world: a SIMULATION, offline and seeded, where accuracy means something.

A procedural image-caption world (`world`), a tiny CLIP (`ViT-Pocket`) that `dra pocket pretrain`
trains on it (`pretrain`), shipped as `pocket.safetensors` and loaded with `--pretrained pocket`, and
four downstream classification tasks (`datasets`: pocket_shapes, pocket_patterns, pocket_scenes,
pocket_counting). It shows whether DRA learns and how its switches compare here; it says nothing
about real CLIP on real images. See docs/pocket.md.
"""

from __future__ import annotations

from pathlib import Path

MODEL = "ViT-Pocket"
WEIGHTS = Path(__file__).resolve().parent / "pocket.safetensors"


def pocket_weights(model_name: str = MODEL) -> Path:
    """The packaged weights of the pocket CLIP; BackboneError naming the fix when they do not apply."""
    from dra.backbones.loading import BackboneError

    if model_name != MODEL:
        raise BackboneError(
            f"--pretrained pocket is the pocket world's tiny CLIP ({MODEL}), not {model_name}: pass "
            f"--model {MODEL}, or --config pocket for the pocket benchmark's settings"
        )
    if not WEIGHTS.is_file():
        raise BackboneError(
            f"the pocket CLIP's weights are not installed ({WEIGHTS}); make them with "
            "`dra pocket pretrain --ship` (see docs/pocket.md)"
        )
    return WEIGHTS


def available() -> bool:
    return WEIGHTS.is_file()
