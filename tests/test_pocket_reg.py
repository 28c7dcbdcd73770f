"""reg_reduction="sample_sum": Eq. 19 read literally (sum over each sample's N*d elements, mean over the batch)."""

from __future__ import annotations

import pytest
import torch

from dra.adapters.branch import AdapterBranch
from dra.adapters.dynamic_rank import DynamicRankAdapter
from dra.config import DRAConfig


def test_sample_sum_is_the_per_sample_l1_sum_averaged_over_the_batch():
    torch.manual_seed(0)
    config = DRAConfig(rank=8, reg_reduction="sample_sum")
    adapter = DynamicRankAdapter(24, config)
    x = torch.randn(3, 11, 24)
    branch = AdapterBranch(adapter, config).train()
    torch.manual_seed(7)
    branch(x)
    torch.manual_seed(7)  # the same noise draw for the reference
    with torch.no_grad():
        masked, unmasked = adapter.forward_with_reference(x)
    per_sample = [
        float(sum(abs(config.scale * (masked[b, i, j] - unmasked[b, i, j])) for i in range(11) for j in range(24)))
        for b in range(3)
    ]
    reference = sum(per_sample) / 3
    reg = branch.reg.item() if not branch.reg.requires_grad else branch.reg.detach().item()
    assert reg == pytest.approx(reference, rel=1e-4)
    assert reg > 0


def test_reductions_are_validated():
    with pytest.raises(ValueError, match="reg_reduction"):
        DRAConfig(reg_reduction="per_token")
