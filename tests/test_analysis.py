"""Figure 4's measures: noiseless ranks from the adapter's own scoring, and noisy-order agreement."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY
from dra.adapters import DynamicRankAdapter
from dra.analysis.token_ranks import branch_inputs, noisy_order_agreement, ranks_and_scores
from dra.backbones import load_backbone
from dra.config import DRAConfig
from dra.methods import build_method


def _dirichlet_scores(n: int = 197, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = -torch.rand(batch, n, generator=g).log()  # Exp(1) -> Dirichlet(1) after normalising
    return x / x.sum(-1, keepdim=True)  # sums to 1 like a_t: ~0.005 each


@pytest.mark.parametrize(
    "cfg, low, high",
    [
        ({"noise_temperature": 0.0}, 1.0, 1.0),  # no noise: the same order
        ({}, -0.2, 0.2),  # the paper's a + g: the noise dwarfs the scores, the order is nearly random
        ({"noise_on_log_scores": True}, 0.4, 1.0),  # log a + g keeps much of the order
    ],
)
def test_noisy_order_agreement_uses_the_adapters_own_perturbation(cfg, low, high):
    adapter = DynamicRankAdapter(16, DRAConfig(rank=8, num_groups=2, rank_ratios=(1.0, 0.5), **cfg))
    value = noisy_order_agreement(adapter, _dirichlet_scores(), samples=4)
    assert low - 1e-9 <= value <= high + 1e-9


def test_ranks_follow_the_noiseless_scores_of_what_each_branch_saw():
    torch.manual_seed(0)
    model = build_method("dra", load_backbone(TINY), ["red circle", "blue square"], DRAConfig(start_layer=6))
    inputs = branch_inputs(model, torch.randn(1, 3, 32, 32))
    assert set(inputs) == {"image", "text"} and set(inputs["image"]) == {6}
    assert inputs["image"][6].shape == (1, 5, 64) and inputs["text"][6].shape[0] == 2  # one prompt per class
    adapter = model.branches("image")[6].adapter
    ranks, scores = ranks_and_scores(adapter, inputs["image"][6])
    order = scores[0].argsort(descending=True)
    # K=4 groups of 5 tokens: sizes 2, 1, 1, 1 (larger first) keep 32, 25, 19, 12 channels
    assert ranks[0, order].tolist() == [32, 32, 25, 19, 12]
