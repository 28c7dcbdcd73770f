"""The adapter branch added to a block: `s * A(LN1(x))`, with gradient scaling and the L1 term."""

from __future__ import annotations

import torch
from torch import nn

from dra.adapters.grad_scale import scale_gradient
from dra.config import DRAConfig


class AdapterBranch(nn.Module):
    """Wraps one adapter; `forward(y)` returns what is added to the residual stream.

    In training with regularisation on, it also records `reg`: mean (or sum) of |X~ - X-| over the
    block output's elements, where X~ - X- = s * (A_train(y) - A_eval(y)) (Eq. 19), taken past the
    gradient-scaling point so that the adapter sees it at the same scale as the classification loss.
    """

    def __init__(self, adapter: nn.Module, config: DRAConfig) -> None:
        super().__init__()
        self.adapter = adapter
        self.config = config
        self.reg: torch.Tensor | None = None

    @property
    def tokenwise(self) -> bool:
        """Whether the output of a token depends on that token alone (the plain adapter, no L1 term):
        then the branch may run on a subset of the tokens, or a shorter (causal) sequence."""
        return bool(getattr(self.adapter, "tokenwise", False)) and not (
            self.training and self.config.regularization and hasattr(self.adapter, "forward_with_reference")
        )

    def _unscaled(self, t: torch.Tensor) -> torch.Tensor:
        return scale_gradient(t, 1.0 / self.config.scale) if self.config.gradient_scaling else t

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if cfg.gradient_scaling:
            y = scale_gradient(y, cfg.scale)
        with_reg = self.training and cfg.regularization and hasattr(self.adapter, "forward_with_reference")
        if with_reg:
            out, ref = self.adapter.forward_with_reference(y)
            diff = (cfg.scale * self._unscaled(out - ref)).abs()
            if cfg.reg_reduction == "mean":
                self.reg = diff.mean()
            elif cfg.reg_reduction == "sample_sum":  # (B, N, d), batch first: sum per sample, mean over B
                self.reg = diff.sum() / diff.shape[0]
            else:
                self.reg = diff.sum()
        else:
            out = self.adapter(y)
            self.reg = None
        return cfg.scale * self._unscaled(out)

    def add_to(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """`t += s * A(y)` in place and return `t`: inference only (no autograd, eval mode), where the
        branch is `s * A(y)` (gradient scaling is the identity forward, no L1 term). The same sum as
        `t + self(y)` to float rounding (`add_` with `alpha=s` may fuse the multiply and the add)."""
        if torch.is_grad_enabled() or self.training:
            raise RuntimeError("AdapterBranch.add_to is for inference (eval mode, no autograd)")
        self.reg = None
        return t.add_(self.adapter(y), alpha=self.config.scale)
