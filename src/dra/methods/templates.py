"""Hand-written prompt ensembles and the zero-shot classifier they give.

    w_c = normalize(mean_t normalize(CLIP_text(template_t(c))))

ImageNet's 8-template ensemble (LFA save_features.py; MetaPrompt meta.py writes the same texts without
the final period): the 7 templates of CLIP's ImageNet notebook plus "a photo of a {}.".
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

IMAGENET_ENSEMBLE = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
    "a photo of a {}.",
)


def templates_for(template: str, imagenet_ensemble: bool) -> list[str]:
    """The method's template alone, or the ImageNet ensemble written as the template is (with or without
    the final period)."""
    if not imagenet_ensemble:
        return [template]
    return list(IMAGENET_ENSEMBLE) if template.endswith(".") else [t[:-1] for t in IMAGENET_ENSEMBLE]


@torch.no_grad()
def zero_shot_classifier(backbone, classnames: list[str], templates: list[str]) -> torch.Tensor:
    """(C, D) normalised frozen CLIP class embeddings, averaged over `templates` (normalised before and after)."""
    names = [c.replace("_", " ") for c in classnames]
    per_template = [
        backbone.encode_text(backbone.tokenize([t.format(c) for c in names]), frozen=True) for t in templates
    ]
    return F.normalize(torch.stack(per_template).float().mean(0), dim=-1)
