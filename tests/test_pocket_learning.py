"""CI holds learning: in the pocket world (a simulation) with the shipped tiny CLIP, a short base
training of `dra` and of the plain adapter raises base accuracy clearly above zero-shot.

The pocket world is where accuracy means something offline (a random backbone only ever shows chance).
"""

from __future__ import annotations

import pytest

from dra import pocket

pytestmark = pytest.mark.skipif(not pocket.available(), reason="the pocket CLIP's weights are not installed")

DATASET = "pocket_dusk"  # the backgrounds at dusk: zero-shot about 62 % on the 4 base classes
MARGIN = 10.0  # points of base accuracy above zero-shot


@pytest.fixture(scope="module")
def base_accuracy(tmp_path_factory):
    import os

    from omegaconf import OmegaConf

    from dra.protocols.base2new import run_one
    from dra.protocols.experiment import Experiment
    from dra.settings import load_settings

    os.environ.setdefault("DRA_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    out = tmp_path_factory.mktemp("runs")
    cfg = load_settings(
        "pocket", {"output": str(out), "seeds": [1], "datasets": [DATASET], "test_per_class": 25, "shots": 8}, None
    )  # the pocket settings, 8 shots (32 images) for speed
    exp = Experiment(cfg)
    acc = {}
    for method in ("zeroshot", "adapter", "dra"):
        acc[method] = run_one(exp, OmegaConf.merge(cfg, {"method": method}), DATASET, 1)["base"]
    return acc


def test_zero_shot_is_clearly_above_chance(base_accuracy):
    assert base_accuracy["zeroshot"] > 2 * 100 / 4, base_accuracy  # 4 base classes


@pytest.mark.parametrize("method", ["dra", "adapter"])
def test_short_training_raises_base_accuracy_above_zero_shot(base_accuracy, method):
    assert base_accuracy[method] >= base_accuracy["zeroshot"] + MARGIN, base_accuracy
