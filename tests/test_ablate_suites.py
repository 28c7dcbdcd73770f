"""The ablation suites' settings: labels, methods and `dra.*` overrides, each valid for the pocket model."""

from __future__ import annotations

import torch

from dra import settings as S
from dra.adapters.dynamic_rank import perturb
from dra.protocols import ablate


def test_mechanism_suite_is_default_noiseless_and_random_grouping():
    cfg = S.load_settings("pocket")
    rows = ablate.SUITES["mechanism"](cfg, 4)
    assert [(label, method) for label, method, _ in rows] == [
        ("defaults", "dra"),
        ("noiseless grouping (noise_temperature=0)", "dra"),
        ("random grouping (noise_temperature=1000)", "dra"),
    ]
    assert [o for _, _, o in rows] == [{}, {"noise_temperature": 0.0}, {"noise_temperature": 1000.0}]
    for _, method, overrides in rows:  # each merges into a valid DRA config
        dra = S.dra_config(ablate.setting_cfg(cfg, method, overrides))
        assert dra.noise_temperature == overrides.get("noise_temperature", 1.0)


def _spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rank correlation of each row of a with the same row of b."""
    ra, rb = a.argsort(-1).argsort(-1).float(), b.argsort(-1).argsort(-1).float()
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    return (ra * rb).sum(-1) / (ra.norm(dim=-1) * rb.norm(dim=-1))


def test_the_mechanism_temperatures_order_tokens_by_score_or_by_noise():
    """Token scores are a softmax over N = 65 tokens; the order that groups them in training is
    argsort(a + tau g). tau = 0 keeps the scores' order; the random-grouping tau leaves none of it."""
    torch.manual_seed(0)
    scores = torch.softmax(torch.randn(2000, 65) * 2, dim=-1)
    assert torch.equal(perturb(scores, 0.0), scores)
    noiseless = _spearman(perturb(scores, 0.0), scores).mean()
    default = _spearman(perturb(scores, 1.0), scores).mean()
    random = _spearman(perturb(scores, ablate.RANDOM_GROUPING_TEMPERATURE), scores)
    assert abs(noiseless - 1.0) < 1e-5
    # 2000 rows of 65: the mean correlation of an unrelated order is 0 +- 0.0028 (1 / sqrt(64 * 2000))
    assert abs(random.mean()) < 0.012
    assert default > random.mean()  # tau = 1 keeps a little of the order at these score sizes
