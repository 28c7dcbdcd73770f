"""Ground truth for Figure 4: which image patches show an object and which prompt tokens are the class name.

A pocket-world scene (`dra.data.generated.world`, a SIMULATION) is drawn by a generator that knows where
its objects are (`world.object_mask`); a prompt is a template around a class name, so the class name's
tokens are known too. `separation` turns per-token scores or ranks into the AUC of telling the two sets
apart (`dra.report.auc`: exact Mann-Whitney, ties counted half).

Labels:
* image: a patch is an *object* patch when objects cover at least half of it (`OBJECT_COVERAGE`), a
  *background* patch when they cover none of it; patches in between are left out. The CLS token is no patch.
* text: the class name's tokens are *class words*; the template's other words and the padding after the
  end-of-text token are the others; the start- and end-of-text tokens are neither (they are the tokenizer's,
  not the template's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dra.data.generated import world
from dra.errors import SettingsError
from dra.report import auc

if TYPE_CHECKING:
    from dra.backbones.base import CLIPBackbone

OBJECT_COVERAGE = 0.5


def parse_scene(text: str) -> tuple[int, int]:
    """`SEED:INDEX` -> (seed, index) of `world.sample`; a SettingsError naming the value otherwise."""
    parts = text.split(":")
    try:
        seed, index = (int(p) for p in parts)
    except ValueError:
        raise SettingsError(f"--scene {text!r} is not SEED:INDEX (two integers, e.g. 0:4)") from None
    if index < 0:
        raise SettingsError(f"--scene {text!r}: the index must be >= 0")
    return seed, index


def parse_scenes(text: str) -> list[tuple[int, int]]:
    """`SEED:FIRST-LAST` -> the scenes (seed, FIRST) .. (seed, LAST); a SettingsError naming the value otherwise."""
    seed, _, span = text.partition(":")
    first, _, last = span.partition("-")
    try:
        seed_, first_, last_ = int(seed), int(first), int(last)
    except ValueError:
        raise SettingsError(f"--scenes {text!r} is not SEED:FIRST-LAST (three integers, e.g. 0:0-99)") from None
    if not 0 <= first_ <= last_:
        raise SettingsError(f"--scenes {text!r}: need 0 <= FIRST <= LAST")
    return [(seed_, i) for i in range(first_, last_ + 1)]


def patch_labels(seed: int, index: int, grid: int) -> np.ndarray:
    """(grid * grid,) in row-major patch order: 1 object patch, 0 background patch, -1 left out (partly covered)."""
    coverage = world.patch_coverage(world.object_mask(seed, index), grid).reshape(-1)
    labels = np.full(coverage.shape, -1, np.int64)
    labels[coverage >= OBJECT_COVERAGE] = 1
    labels[coverage == 0] = 0
    return labels


def prompt_labels(backbone: CLIPBackbone, template: str, classname: str) -> np.ndarray | None:
    """(context length,) for `template.format(classname)`'s tokens: 1 class word, 0 template word or padding,
    -1 the start- and end-of-text tokens. None when the class name's tokens are not found whole in the prompt
    (a tokenizer that merges them with the template's): then there is no ground truth to report."""
    name = classname.replace("_", " ")
    tokens = backbone.tokenize([template.format(name)])[0].tolist()
    eot = max(tokens)  # the end-of-text token has the largest id
    words, cls = _words(backbone, template.split("{}")[0]), _words(backbone, name)
    start, end = 1 + len(words), 1 + len(words) + len(cls)
    if not cls or tokens[start:end] != cls:
        return None
    labels = np.zeros(len(tokens), np.int64)
    labels[start:end] = 1
    labels[0] = -1
    labels[tokens.index(eot)] = -1
    return labels


def _words(backbone: CLIPBackbone, text: str) -> list[int]:
    """The tokens of `text` between the start- and end-of-text tokens."""
    tokens = backbone.tokenize([text])[0].tolist()
    eot = max(tokens)
    return tokens[1 : tokens.index(eot)]


def separation(scores, ranks, labels: np.ndarray) -> dict:
    """AUC of `scores` and of `ranks` (each (N,), numpy or torch) for label 1 vs label 0 (-1 left out), and the
    two set sizes. An AUC is None when a set is empty."""
    keep = labels >= 0
    scores, ranks = np.asarray(_numpy(scores), np.float64), np.asarray(_numpy(ranks), np.float64)
    positive = labels[keep] == 1
    return {
        "auc_scores": auc(scores[keep], positive),
        "auc_ranks": auc(ranks[keep], positive),
        "positives": int(positive.sum()),
        "negatives": int((~positive).sum()),
    }


def _numpy(x):
    return x.detach().cpu().float().numpy() if hasattr(x, "detach") else x
