"""LoRA on the q, k, v projections of an open_clip attention, as CLIP-LoRA puts it (MaxZanella/CLIP-LoRA).

open_clip's attention is an `nn.MultiheadAttention` with one fused `in_proj_weight` (3d x d). CLIP-LoRA
splits it into q, k, v Linears and gives each its own low-rank pair; here the frozen fused weight stays
as it is and `LoRAAttention` adds the three updates:

    q = x W_q^T + b_q + scaling * dropout(x) A_q^T B_q^T        (k, v alike; scaling = alpha / sqrt(r))

then scaled dot-product attention over the heads and the frozen output projection. A is (r, d),
Kaiming-uniform (a = sqrt(5)); B is (d, r), zero: a new LoRA starts as exactly the frozen attention.
`merge()` adds scaling * B A into the fused weight (inference without the extra matmuls), `unmerge()`
subtracts it again, as PEFT does.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from dra.adapters.bottleneck import check_bottleneck
from dra.backbones.wrapping import ModuleWrapper, WrapError

PROJECTIONS = ("q", "k", "v")


class LoRAProjections(nn.Module):
    """The learned tensors of one attention: `<q|k|v>_A` (r, d) and `<q|k|v>_B` (d, r)."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        check_bottleneck("lora.rank", rank, dim)
        for name in PROJECTIONS:
            a = nn.Parameter(torch.empty(rank, dim))
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
            self.register_parameter(f"{name}_A", a)
            self.register_parameter(f"{name}_B", nn.Parameter(torch.zeros(dim, rank)))

    def pair(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"{name}_A"), getattr(self, f"{name}_B")


class LoRAAttention(ModuleWrapper):
    def __init__(self, base: nn.Module, rank: int, scaling: float, dropout: float) -> None:
        if not isinstance(base, nn.MultiheadAttention) or not getattr(base, "_qkv_same_embed_dim", False):
            raise WrapError(
                f"LoRA needs an nn.MultiheadAttention with a fused in_proj_weight, got {type(base).__name__}"
            )
        super().__init__(base)
        self.lora = LoRAProjections(base.embed_dim, rank)
        self.scaling = scaling
        self.dropout = dropout
        self.merged = False

    def delta(self, name: str) -> torch.Tensor:
        a, b = self.lora.pair(name)
        return self.scaling * (b @ a)

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            d = self.base.embed_dim
            for i, name in enumerate(PROJECTIONS):
                self.base.in_proj_weight[i * d : (i + 1) * d] += self.delta(name).to(self.base.in_proj_weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            d = self.base.embed_dim
            for i, name in enumerate(PROJECTIONS):
                self.base.in_proj_weight[i * d : (i + 1) * d] -= self.delta(name).to(self.base.in_proj_weight.dtype)
            self.merged = False

    def _update(self, name: str, x: torch.Tensor) -> torch.Tensor:
        a, b = self.lora.pair(name)
        x = F.dropout(x, self.dropout, self.training) if self.dropout else x
        return (x @ a.t().to(x.dtype)) @ (self.scaling * b.t()).to(x.dtype)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=False, attn_mask=None, **kwargs):
        mha = self.base
        if self.merged:  # the frozen attention with the merged weight: open_clip's own path
            return mha(
                query,
                key,
                value,
                key_padding_mask=key_padding_mask,
                need_weights=need_weights,
                attn_mask=attn_mask,
                **kwargs,
            )
        if key_padding_mask is not None or need_weights:
            raise NotImplementedError(
                "LoRAAttention supports open_clip's call (no key_padding_mask, need_weights=False)"
            )
        if not mha.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        d, heads = mha.embed_dim, mha.num_heads
        w, bias = mha.in_proj_weight, mha.in_proj_bias
        out = []
        for i, (name, x) in enumerate(zip(PROJECTIONS, (query, key, value))):
            y = F.linear(x, w[i * d : (i + 1) * d], None if bias is None else bias[i * d : (i + 1) * d])
            out.append(y + self._update(name, x))
        q, k, v = (t.unflatten(-1, (heads, d // heads)).transpose(1, 2) for t in out)  # (N, h, L, d/h)
        mask = attn_mask
        if mask is not None and mask.dtype == torch.bool:  # MHA: True = masked; SDPA: True = attend
            mask = torch.zeros_like(mask, dtype=q.dtype).masked_fill(mask, float("-inf"))
        elif mask is not None:
            mask = mask.to(q.dtype)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=mha.dropout if mha.training else 0.0)
        y = F.linear(y.transpose(1, 2).flatten(-2), mha.out_proj.weight, mha.out_proj.bias)
        if not mha.batch_first:
            y = y.transpose(0, 1)
        return y, None

    def extra_repr(self) -> str:
        return (
            f"rank={self.lora.q_A.shape[0]}, scaling={self.scaling:.4g}, dropout={self.dropout}, merged={self.merged}"
        )
