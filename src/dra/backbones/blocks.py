"""An open_clip residual block with a learned branch beside it, as a module of its own.

    "attention" (the paper):  x <- x + Attn(LN1 x) + branch(LN1 x);  x <- x + MLP(LN2 x)
    "block"     (MMA):        x <- x + Attn(LN1 x);  x <- x + MLP(LN2 x) + branch(LN1 x)

`branch` returns what is added (for the adapters: s * A(LN1 x)).
"""
from __future__ import annotations

import torch
from torch import nn

from dra.backbones.wrapping import ModuleWrapper, WrapError
from dra.config import PLACEMENTS


class ParallelBranchBlock(ModuleWrapper):
    def __init__(self, base: nn.Module, branch: nn.Module, placement: str = "attention") -> None:
        if not all(hasattr(base, a) for a in ("ln_1", "attention", "ls_1", "ln_2", "mlp", "ls_2")):
            raise WrapError(f"{type(base).__name__} is not an open_clip residual attention block")
        if placement not in PLACEMENTS:
            raise WrapError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        super().__init__(base)
        self.branch = branch
        self.placement = placement

    def forward(self, q_x: torch.Tensor, k_x: torch.Tensor | None = None, v_x: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        # open_clip calls blocks as block(x, attn_mask=...) or, under checkpointing, block(x, None, None, mask)
        b = self.base
        y = b.ln_1(q_x)
        attn = b.ls_1(b.attention(q_x=y, attn_mask=attn_mask))
        if self.placement == "attention":
            x = q_x + (attn + self.branch(y))
            return x + b.ls_2(b.mlp(b.ln_2(x)))
        x = q_x + attn
        return x + b.ls_2(b.mlp(b.ln_2(x))) + self.branch(y)

    def extra_repr(self) -> str:
        return f"placement={self.placement!r}"
