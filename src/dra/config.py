"""`DRAConfig`: every switch of the DRA adapter, with the paper's values as defaults.

Each field maps to a line of DESIGN.md section 1 or an ablation of the paper (Tables 4, 5, Fig. 3).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

BRANCHES = ("image", "text", "both")
PLACEMENTS = ("attention", "block")
REDUCTIONS = ("mean", "sum", "sample_sum")


@dataclass
class DRAConfig:
    # -- shape of the adapter ------------------------------------------------------------------
    rank: int = 32
    """r: the bottleneck width and the highest rank a token can get (Fig. 3a)."""
    start_layer: int = 5
    """h (1-based): adapters sit in blocks h..L of each encoder (Fig. 3b; 7 for cross-dataset)."""
    num_groups: int = 4
    """K token-importance groups (Table 5)."""
    rank_ratios: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4)
    """e_i: group i keeps floor(e_i * r) channels, scaled by 1/e_i (Table 5)."""
    scale: float = 0.001
    """s: the adapter branch is added as s * A(LN1(x))."""
    # -- ablations (Table 4; the plain-adapter "Baseline" row is the method `adapter`) --------------
    branches: str = "both"
    """Which encoders get adapters: "image" (DRA-V), "text" (DRA-T) or "both" (DRA-T&V)."""
    channel_response: bool = True
    """CR: keep the channels of highest response; off keeps the first floor(e_i r) channels by index."""
    regularization: bool = True
    """L1 term between masked (train) and unmasked (eval) adapter outputs (Eq. 19)."""
    reg_weight_text: float = 1.0
    """lambda_T (Eq. 20)."""
    reg_weight_image: float = 1.0
    """lambda_V (Eq. 20)."""
    reg_reduction: str = "mean"
    """"mean" over the block output's elements; "sum" over all of them (batch included); "sample_sum":
    Eq. 19 read literally, the sum over the N*d elements of each sample, then the mean over the batch."""
    # -- choices DESIGN.md makes where the paper is open ------------------------------------------
    output_relu: bool = True
    """The ReLU after `up` (Eqs. 8, 17, 18); False gives the MMA-style linear output."""
    learnable_scores: bool = True
    """Straight-through soft ranks let gradients reach token_proj/channel_proj; False = literal sort."""
    relax_temperature: float = 1.0
    """Temperature of the pairwise sigmoids of the soft rank (score units)."""
    noise_temperature: float = 1.0
    """tau in argsort(a + tau * g), g ~ Gumbel(0, 1); 0 disables the training noise."""
    noise_on_log_scores: bool = False
    """Sort log(a) + tau * g (the Gumbel-top-k trick) instead of a + tau * g."""
    gradient_scaling: bool = True
    """MMA's trick: forward x s, but the adapter's parameters get unshrunk gradients."""
    placement: str = "attention"
    """"attention": parallel to the block's attention (paper); "block": parallel to the whole block (MMA)."""

    def __post_init__(self) -> None:
        self.rank_ratios = tuple(float(e) for e in self.rank_ratios)
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if self.start_layer < 1:
            raise ValueError(f"start_layer is 1-based and must be >= 1, got {self.start_layer}")
        if len(self.rank_ratios) != self.num_groups:
            raise ValueError(
                f"rank_ratios has {len(self.rank_ratios)} values but num_groups is {self.num_groups}: "
                "give one ratio per group"
            )
        if any(not (0.0 < e <= 1.0) for e in self.rank_ratios):
            raise ValueError(f"every rank ratio must lie in (0, 1], got {self.rank_ratios}")
        if min(self.kept_channels) < 1:
            raise ValueError(f"rank_ratios {self.rank_ratios} keep no channel at rank {self.rank}")
        for name, value, allowed in (
            ("branches", self.branches, BRANCHES),
            ("placement", self.placement, PLACEMENTS),
            ("reg_reduction", self.reg_reduction, REDUCTIONS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")
        if self.noise_temperature < 0 or self.relax_temperature <= 0:
            raise ValueError("noise_temperature must be >= 0 and relax_temperature > 0")

    @property
    def kept_channels(self) -> tuple[int, ...]:
        """floor(e_i * r) per group (a tiny epsilon guards 0.29 * 100 = 28.999...)."""
        return tuple(int(math.floor(e * self.rank + 1e-9)) for e in self.rank_ratios)

    @property
    def adapts_image(self) -> bool:
        return self.branches in ("image", "both")

    @property
    def adapts_text(self) -> bool:
        return self.branches in ("text", "both")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["rank_ratios"] = list(self.rank_ratios)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DRAConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown DRAConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "DRAConfig":
        return dataclasses.replace(self, **changes)


__all__ = ["DRAConfig", "BRANCHES", "PLACEMENTS"]
