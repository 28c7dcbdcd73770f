"""Adapters: pure torch, no CLIP inside."""

from dra.adapters.branch import AdapterBranch
from dra.adapters.dynamic_rank import DynamicRankAdapter
from dra.adapters.grad_scale import scale_gradient
from dra.adapters.plain import PlainAdapter

__all__ = ["AdapterBranch", "DynamicRankAdapter", "PlainAdapter", "scale_gradient"]
