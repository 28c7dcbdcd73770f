"""CI holds learning: in the pocket world (a simulation) with the shipped tiny CLIP, a short base
training of every trained method raises base accuracy above zero-shot.

The pocket world is where accuracy means something offline (a random backbone only ever shows chance).
Each method trains with the pocket settings (`configs/pocket.yaml`, with its `method_overrides` for the
baselines) on `pocket_dusk`, 8 shots, and is scored on the 800 base test images (the 200 of datasets-v4
until the benchmark's v5 layout; the training images are the same); the score is the mean over seeds 1
and 2 (one seed can be unlucky: CoCoOp's seed 2 stays at zero-shot).
"""

from __future__ import annotations

import pytest

from dra import pocket

pytestmark = pytest.mark.skipif(not pocket.available(), reason="the pocket CLIP's weights are not installed")

DATASET = "pocket_dusk"  # the backgrounds at dusk: zero-shot 63 % on the 4 base classes (chance 25 %)
SEEDS = (1, 2)
MARGIN = 10.0  # points of base accuracy above zero-shot: DRA and the plain adapter (issue #8)
# Measured (mean of seeds 1, 2): dra 89.5, adapter 84.5, zero-shot 63.0. The baselines' margins sit
# under what they reach; KgCoOp and TCP pull the text features back to CLIP's (their point), Tip-Adapter
# trains nothing: small gains.
BASELINE_MARGINS = {
    "coop": 10.0,
    "cocoop": 10.0,
    "maple": 10.0,
    "mma": 10.0,
    "clip_lora": 10.0,
    "clip_adapter": 10.0,
    "tip_adapter_f": 5.0,
    "tcp": 3.0,
    "kgcoop": 2.0,
    "tip_adapter": 2.0,
    # measured (issue #18): metaprompt 88.3, lfa 91.5, proda 76.0
    "metaprompt": 10.0,
    "lfa": 10.0,
    "proda": 8.0,
}


@pytest.fixture(scope="module")
def base_accuracy(tmp_path_factory):
    """method -> mean base accuracy over SEEDS, computed on first use."""
    import os

    import torch

    from dra.protocols.base2new import run_one
    from dra.protocols.experiment import Experiment
    from dra.settings import load_settings

    os.environ.setdefault("DRA_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    out = tmp_path_factory.mktemp("runs")
    cache: dict[str, float] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 6 M-parameter model: one thread is as fast, and 3x faster on a shared machine

    def accuracy(method: str) -> float:
        if method not in cache:
            values = {"output": str(out), "datasets": [DATASET], "shots": 8, "method": method}
            cfg = load_settings("pocket", values, None)
            exp = Experiment(cfg)
            cache[method] = sum(run_one(exp, cfg, DATASET, seed)["base"] for seed in SEEDS) / len(SEEDS)
        return cache[method]

    yield accuracy
    torch.set_num_threads(threads)


def test_zero_shot_is_clearly_above_chance(base_accuracy):
    assert base_accuracy("zeroshot") > 2 * 100 / 4  # 4 base classes


@pytest.mark.parametrize("method", ["dra", "adapter"])
def test_short_training_raises_base_accuracy_above_zero_shot(base_accuracy, method):
    assert base_accuracy(method) >= base_accuracy("zeroshot") + MARGIN, (method, base_accuracy(method))


@pytest.mark.parametrize("method", list(BASELINE_MARGINS))
def test_every_baseline_trains_above_zero_shot(base_accuracy, method):
    zero_shot = base_accuracy("zeroshot")
    assert base_accuracy(method) >= zero_shot + BASELINE_MARGINS[method], (method, base_accuracy(method), zero_shot)


def test_every_trained_method_is_in_the_matrix():
    from dra.methods import method_names

    assert set(method_names()) == {"zeroshot", "dra", "adapter", *BASELINE_MARGINS}
