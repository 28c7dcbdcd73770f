"""An open_clip residual block with a learned branch beside it, as a module of its own.

    "attention" (the paper):  x <- x + Attn(LN1 x) + branch(LN1 x);  x <- x + MLP(LN2 x)
    "block"     (MMA):        x <- x + Attn(LN1 x);  x <- x + MLP(LN2 x) + branch(LN1 x)

`branch` returns what is added (for the adapters: s * A(LN1 x)).

`rows` (set by `CLIPBackbone` for the last block while a method encodes, None otherwise): the one
token per sample whose output the tower pools (CLS / EOT). The block then returns only that token,
(B, 1, d): its attention query, attention output, MLP and residual run for that token alone (keys and
values for all tokens), which is exact because no other token's output of the last block is used. The
branch still sees every token (DRA's token scores, masks and L1 term are over the whole sequence),
unless it is token-wise (`branch.tokenwise`: the plain adapter without an L1 term).

Attention with gradients: the base block's `nn.MultiheadAttention` is batch-first, and its autograd
path transposes the input to (N, B, d), so the packed input projection runs as a batched matmul over
an expanded weight, and its backward fills and copies (3, N, B, d) buffers. With autograd on, the
block therefore computes the same attention from the same weights on the batch-first tensor: one
(B*N, d) x (d, 3d) projection, `scaled_dot_product_attention`, the output projection (float-close to
`nn.MultiheadAttention`; tested). Without autograd (inference) open_clip's own call is used.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

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
        self.rows: torch.Tensor | None = None

    def forward(self, q_x: torch.Tensor, k_x: torch.Tensor | None = None, v_x: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        # open_clip calls blocks as block(x, attn_mask=...) or, under checkpointing, block(x, None, None, mask)
        b = self.base
        y = b.ln_1(q_x)
        if self.rows is not None:
            return self._pooled_row(q_x, y, attn_mask)
        attn = b.ls_1(self._attention(y, y, attn_mask))
        if self.placement == "attention":
            x = q_x + (attn + self.branch(y))
            return x + b.ls_2(b.mlp(b.ln_2(x)))
        x = q_x + attn
        return x + b.ls_2(b.mlp(b.ln_2(x))) + self.branch(y)

    def _pooled_row(self, q_x: torch.Tensor, y: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        b = self.base
        idx = self.rows.view(-1, 1, 1).expand(-1, 1, q_x.shape[-1])
        y_r = y.gather(1, idx)
        mask = None if attn_mask is None else attn_mask[self.rows].unsqueeze(1)  # (B, 1, N): the pooled rows
        attn = b.ls_1(self._attention(y_r, y, mask))
        tokenwise = getattr(self.branch, "tokenwise", False)
        branch = self.branch(y_r) if tokenwise else self.branch(y).gather(1, idx)
        x_r = q_x.gather(1, idx)
        if self.placement == "attention":
            x = x_r + (attn + branch)
            return x + b.ls_2(b.mlp(b.ln_2(x)))
        x = x_r + attn
        return x + b.ls_2(b.mlp(b.ln_2(x))) + branch

    def _own_attention(self) -> bool:
        a = self.base.attn
        return (torch.is_grad_enabled() and isinstance(a, nn.MultiheadAttention) and a.batch_first
                and a._qkv_same_embed_dim and a.in_proj_bias is not None and a.bias_k is None
                and not a.add_zero_attn and (a.dropout == 0 or not a.training))

    def _attention(self, q_x: torch.Tensor, kv_x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Self-attention of the base block, queries from `q_x`, keys and values from `kv_x` (batch-first).
        `mask`: None, (Nq, N), or (B, Nq, N) (one mask per sample, all heads)."""
        b = self.base
        if not self._own_attention():
            if mask is not None and mask.dim() == 3:  # nn.MultiheadAttention wants one per sample and head
                mask = mask.repeat_interleave(b.attn.num_heads, dim=0)
            return b.attention(q_x=q_x, k_x=kv_x, v_x=kv_x, attn_mask=mask)
        a = b.attn
        bsz, nq, d = q_x.shape
        heads = a.num_heads
        w, bias = a.in_proj_weight, a.in_proj_bias
        if q_x is kv_x:
            q, k, v = F.linear(q_x, w, bias).view(bsz, nq, 3, heads, d // heads).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            q = F.linear(q_x, w[:d], bias[:d]).view(bsz, nq, heads, d // heads).transpose(1, 2)
            k, v = F.linear(kv_x, w[d:], bias[d:]).view(bsz, -1, 2, heads, d // heads).permute(2, 0, 3, 1, 4).unbind(0)
        if mask is not None:
            mask = (mask.unsqueeze(1) if mask.dim() == 3 else mask).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return F.linear(out.transpose(1, 2).reshape(bsz, nq, d), a.out_proj.weight, a.out_proj.bias)

    def extra_repr(self) -> str:
        return f"placement={self.placement!r}"
