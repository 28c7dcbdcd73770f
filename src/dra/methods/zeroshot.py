"""Zero-shot CLIP: the frozen model with the hand-written prompt; nothing to train."""

from __future__ import annotations

from dra.methods.base import ClassifierModel


class ZeroShotCLIP(ClassifierModel):
    trains_by_sgd = False
