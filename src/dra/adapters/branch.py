"""The adapter branch added to a block: `s * A(LN1(x))`, with gradient scaling and the L1 term."""

from __future__ import annotations

import torch
from torch import nn

from dra.adapters.grad_scale import scale_gradient
from dra.config import DRAConfig


class _ScaledOutput(torch.autograd.Function):
    """`s * out`, gradient scaling undone: `s * scale_gradient(out, 1 / s)` in one step. Forward `s * out`;
    backward passes the gradient on unchanged, which is `grad * s * (1 / s)` without the two
    multiplications (equal to float rounding)."""

    @staticmethod
    def forward(ctx, out: torch.Tensor, scale: float) -> torch.Tensor:
        return out * scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class _L1Term(torch.autograd.Function):
    """The L1 term of Eq. 19, `sum |s * (out - ref)| / divisor`, as one operation.

    Forward: `d = out - ref`, then `s * ||d||_1 / divisor` (one pass, no |d| tensor). Backward: `sign(d)`
    times `grad * s / divisor`, times `1 / s` with gradient scaling (the adapter sees the term at the
    classification loss's scale), to `out`, and its negative to `ref`. The same value and gradients as
    `(s * scale_gradient(out - ref, 1 / s)).abs().mean()` (or `.sum() / divisor`) to float rounding,
    with 3 passes over (B, N, d) tensors forward and backward instead of about 12 (sub, mul, abs,
    mean; mean's expansion, sgn, three multiplications, neg); it keeps `d` for backward where autograd
    kept the input of `abs`."""

    @staticmethod
    def forward(ctx, out, ref, scale: float, divisor: float, gradient_scaling: bool):
        d = out - ref
        ctx.save_for_backward(d)
        ctx.factor = (1.0 if gradient_scaling else scale) / divisor
        return torch.linalg.vector_norm(d, ord=1).to(d.dtype) * (scale / divisor)

    @staticmethod
    def backward(ctx, grad):
        (d,) = ctx.saved_tensors
        g_out = torch.sign(d).mul_(grad * ctx.factor)
        g_ref = torch.neg(g_out) if ctx.needs_input_grad[1] else None
        return g_out, g_ref, None, None, None


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
    def with_reg(self) -> bool:
        """Whether this call records the L1 term: training, regularisation on, an adapter with a reference."""
        return self.training and self.config.regularization and hasattr(self.adapter, "forward_with_reference")

    @property
    def tokenwise(self) -> bool:
        """Whether the output of a token depends on that token alone (the plain adapter, no L1 term):
        then the branch may run on a subset of the tokens, or a shorter (causal) sequence."""
        return bool(getattr(self.adapter, "tokenwise", False)) and not self.with_reg

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if cfg.gradient_scaling:
            y = scale_gradient(y, cfg.scale)
        if self.with_reg:
            out, ref = self.adapter.forward_with_reference(y)
            # reduction over (B, N, d), batch first: "mean" over all elements, "sample_sum" the sum per
            # sample and the mean over B, "sum" the sum
            divisor = {"mean": out.numel(), "sample_sum": out.shape[0]}.get(cfg.reg_reduction, 1)
            self.reg = _L1Term.apply(out, ref, cfg.scale, divisor, cfg.gradient_scaling)
        else:
            out = self.adapter(y)
            self.reg = None
        if cfg.gradient_scaling:
            return _ScaledOutput.apply(out, cfg.scale)
        return cfg.scale * out

    def add_to(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """`t += s * A(y)` in place and return `t`: inference only (no autograd, eval mode), where the
        branch is `s * A(y)` (gradient scaling is the identity forward, no L1 term). The same sum as
        `t + self(y)` to float rounding (`add_` with `alpha=s` may fuse the multiply and the add)."""
        if torch.is_grad_enabled() or self.training:
            raise RuntimeError("AdapterBranch.add_to is for inference (eval mode, no autograd)")
        self.reg = None
        return t.add_(self.adapter(y), alpha=self.config.scale)
