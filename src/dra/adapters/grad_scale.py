"""Identity in the forward pass, gradient times `factor` in the backward pass (MMA's trick).

With `out = s * scale_gradient(A(scale_gradient(y, s)), 1 / s)` the block sees `s * A(y)`, the adapter's
own parameters receive the gradient they would get without the factor `s`, and the gradient that
flows back into the frozen residual stream through the adapter branch is multiplied by `s`.
"""

from __future__ import annotations

import torch


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.factor, None


def scale_gradient(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Return `x` unchanged; its gradient is multiplied by `factor` on the way back."""
    return _ScaleGradient.apply(x, factor)
