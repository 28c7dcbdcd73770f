"""A CLIP residual block with a learned branch beside it, as a module of its own.

    "attention" (the paper):  x <- x + Attn(LN1 x) + branch(LN1 x);  x <- x + MLP(LN2 x)
    "block"     (MMA):        x <- x + Attn(LN1 x);  x <- x + MLP(LN2 x) + branch(LN1 x)

`branch` returns what is added (for the adapters: s * A(LN1 x)). `Attn` and `MLP` are the block's
own residual terms, layer scale and (eval-mode) drop path included. Which attributes hold LN1, the
attention, LN2 and the MLP, and how the block is called, differs between CLIP families; a
`BlockAnatomy` per family says it (`ANATOMIES`):

- open_clip `ResidualAttentionBlock`: `ln_1`, `attention(q_x=, attn_mask=)`, `ls_1`; `ln_2`, `mlp`, `ls_2`
- timm `vision_transformer.Block` (SigLIP trunks in open_clip): `norm1`, `attn`, `ls1`, `drop_path1`;
  `norm2`, `mlp`, `ls2`, `drop_path2`
- timm `eva.EvaBlock` (EVA02 in open_clip): `norm1`, `attn(x, rope=, ...)`, `gamma_1`, `drop_path1`;
  `norm2`, `mlp`, `gamma_2`, `drop_path2`
- Hugging Face `CLIPEncoderLayer` / `SiglipEncoderLayer`: `layer_norm1`, `self_attn(...)[0]`; `layer_norm2`, `mlp`

The wrapped block is called exactly as the original (same positional and keyword arguments); the
call's extra arguments (masks, rope) go to the attention as the original block passes them.

Open_clip blocks have two exact shortcuts. `rows` (set by `CLIPBackbone` for the last block while a method encodes, None otherwise): the one
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
`nn.MultiheadAttention`; tested). Without autograd (inference) open_clip's own call is used (its
`nn.MultiheadAttention` fast path), and the block's sums are accumulated in place into the fresh
attention and MLP outputs (`_inference`; the branch through `AdapterBranch.add_to`, ReLUs in place):
on the CPU every new (B, N, d) tensor costs more than the addition that fills it, so the wrapped block
allocates fewer of them than open_clip's own block does. Same values to float rounding (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from dra.backbones.wrapping import ModuleWrapper, WrapError
from dra.config import PLACEMENTS


def _call(module, x):
    return x if module is None else module(x)


def _scale(gamma, x):
    return x if gamma is None else gamma * x


@dataclass(frozen=True)
class BlockAnatomy:
    """Where a family's block keeps its parts and how its residual terms are computed."""

    family: str
    needs: tuple[str, ...]
    ln1: Callable[[nn.Module], nn.Module]
    attention: Callable  # (block, y = LN1 x, extra positional args, keyword args) -> residual attention term
    mlp: Callable  # (block, x) -> residual MLP term (LN2 inside)
    returns_tuple: Callable[[], bool] = lambda: False

    def matches(self, block: nn.Module) -> bool:
        return all(hasattr(block, a) for a in self.needs)


def _open_clip_attention(b, y, args, kwargs):
    mask = kwargs.get("attn_mask", args[2] if len(args) > 2 else None)
    return b.ls_1(b.attention(q_x=y, attn_mask=mask))


def _timm_attention(b, y, args, kwargs):
    return _call(getattr(b, "drop_path1", None), b.ls1(b.attn(y, *args, **kwargs)))


def _timm_mlp(b, x):
    return _call(getattr(b, "drop_path2", None), b.ls2(b.mlp(b.norm2(x))))


def _eva_attention(b, y, args, kwargs):
    return _call(getattr(b, "drop_path1", None), _scale(b.gamma_1, b.attn(y, *args, **kwargs)))


def _eva_mlp(b, x):
    return _call(getattr(b, "drop_path2", None), _scale(b.gamma_2, b.mlp(b.norm2(x))))


def _hf_attention(b, y, args, kwargs):
    kwargs = dict(kwargs)
    if args:  # HF layers: (hidden_states, attention_mask, [causal_attention_mask], ...)
        kwargs.setdefault("attention_mask", args[0])
        if len(args) > 1 and "causal_attention_mask" not in kwargs:
            kwargs["causal_attention_mask"] = args[1]
    out = b.self_attn(hidden_states=y, **kwargs)
    return out[0] if isinstance(out, tuple) else out


def _hf_returns_tuple() -> bool:
    """transformers < 5 layers return `(hidden_states, ...)`; 5.x returns the tensor."""
    try:
        import transformers
    except ImportError:  # pragma: no cover - an HF layer implies transformers
        return False
    return int(transformers.__version__.split(".")[0]) < 5


ANATOMIES: dict[str, BlockAnatomy] = {
    "open_clip": BlockAnatomy(
        "open_clip",
        ("ln_1", "attention", "ls_1", "ln_2", "mlp", "ls_2"),
        lambda b: b.ln_1,
        _open_clip_attention,
        lambda b, x: b.ls_2(b.mlp(b.ln_2(x))),
    ),
    "timm": BlockAnatomy(
        "timm", ("norm1", "attn", "ls1", "norm2", "mlp", "ls2"), lambda b: b.norm1, _timm_attention, _timm_mlp
    ),
    "timm_eva": BlockAnatomy(
        "timm_eva", ("norm1", "attn", "gamma_1", "norm2", "mlp", "gamma_2"), lambda b: b.norm1, _eva_attention, _eva_mlp
    ),
    "hf": BlockAnatomy(
        "hf",
        ("layer_norm1", "self_attn", "layer_norm2", "mlp"),
        lambda b: b.layer_norm1,
        _hf_attention,
        lambda b, x: b.mlp(b.layer_norm2(x)),
        _hf_returns_tuple,
    ),
}


def block_anatomy(block: nn.Module) -> BlockAnatomy:
    """The anatomy of a CLIP block; `WrapError` naming the known ones for any other module."""
    for anatomy in ANATOMIES.values():
        if anatomy.matches(block):
            return anatomy
    raise WrapError(
        f"{type(block).__name__} is not a block dra knows how to adapt (known: open_clip ResidualAttentionBlock, "
        "timm Block / EvaBlock, Hugging Face CLIPEncoderLayer / SiglipEncoderLayer)"
    )


def _hooked(module: nn.Module) -> bool:
    """Whether calling `module` would run forward (pre-)hooks: its own or global ones."""
    from torch.nn.modules import module as m

    return bool(
        module._forward_hooks or module._forward_pre_hooks or m._global_forward_hooks or m._global_forward_pre_hooks
    )


def _heads(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, heads: int, parts: int
) -> tuple[torch.Tensor, ...]:
    """`parts` per-head projections of `x` (B, N, d_in) by one packed linear: (B, heads, N, d_head) views.
    With a frozen weight and bias the backward is `_FrozenHeads`'s (no gradient stacking)."""
    if weight.requires_grad or bias.requires_grad or not torch.is_grad_enabled():
        bsz, n, _ = x.shape
        d = weight.shape[0] // parts
        return F.linear(x, weight, bias).view(bsz, n, parts, heads, d // heads).permute(2, 0, 3, 1, 4).unbind(0)
    return _FrozenHeads.apply(x, weight, bias, heads, parts)


class _FrozenHeads(torch.autograd.Function):
    """`_heads` for a frozen weight: the same forward; backward computes the input's gradient as
    sum_i grad_i @ W_i, one matrix product per part accumulated in place, straight from the
    (B, N, heads, d_head) buffers `scaled_dot_product_attention`'s backward fills. Autograd's own
    backward of the views would first stack the parts' gradients into a new (B, N, parts, heads,
    d_head) tensor (a `cat` and a `copy_`) for one product with the packed weight: the same sum to
    float rounding, for two more passes over the largest tensors of the block."""

    @staticmethod
    def forward(ctx, x, weight, bias, heads, parts):
        bsz, n, d_in = x.shape
        d = weight.shape[0] // parts
        ctx.save_for_backward(weight)
        ctx.dims = (bsz, n, d_in, parts, x.dtype)
        return F.linear(x, weight, bias).view(bsz, n, parts, heads, d // heads).permute(2, 0, 3, 1, 4).unbind(0)

    @staticmethod
    def backward(ctx, *grads):
        (weight,) = ctx.saved_tensors
        bsz, n, d_in, parts, dtype = ctx.dims
        d = weight.shape[0] // parts
        gx = None
        for i, g in enumerate(grads):
            if g is None:
                continue
            g = g.transpose(1, 2).reshape(bsz * n, d)  # a view when g is the (B, N, heads, d_head) buffer
            w = weight[i * d : (i + 1) * d].to(g.dtype)
            gx = torch.mm(g, w) if gx is None else gx.addmm_(g, w)
        if gx is not None:
            gx = gx.view(bsz, n, d_in).to(dtype)
        return gx, None, None, None, None


class ParallelBranchBlock(ModuleWrapper):
    def __init__(self, base: nn.Module, branch: nn.Module, placement: str = "attention") -> None:
        anatomy = block_anatomy(base)
        if placement not in PLACEMENTS:
            raise WrapError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        super().__init__(base)
        self.branch = branch
        self.placement = placement
        self.anatomy = anatomy
        self.rows: torch.Tensor | None = None
        # `frozen_input`: a tensor that its owner passes to this block again and again, unchanged and
        # without gradient (the cached text prefix entering the first adapted text block, set by
        # AdaptedCLIP while training): LN1 of it and the attention term are then computed once and kept
        # (`_frozen_parts`), since they depend on nothing that trains.
        self.frozen_input: torch.Tensor | None = None
        self._frozen: tuple | None = None

    def forward(self, q_x: torch.Tensor, *args, **kwargs):
        # open_clip calls blocks as block(x, attn_mask=...) or, under checkpointing, block(x, None, None, mask);
        # timm as block(x[, attn_mask=...]) / EVA block(x, rope=...); Hugging Face as layer(x, attention_mask, ...)
        a, b = self.anatomy, self.base
        if a.family == "open_clip":
            mask = kwargs.get("attn_mask", args[2] if len(args) > 2 else None)
            if q_x is self.frozen_input and self.rows is None and torch.is_grad_enabled():
                y, attn = self._frozen_parts(q_x, mask)
            else:
                y = b.ln_1(q_x)
                if self.rows is not None:
                    return self._pooled_row(q_x, y, mask)
                attn = b.ls_1(self._attention(y, y, mask))
                if not torch.is_grad_enabled():
                    return self._inference(q_x, y, attn)
            # with autograd the sums still accumulate in place where no backward needs the tensor (an
            # addition's output, the MLP's last linear's output): fewer new (B, N, d) tensors, same values
            if self.placement == "attention":
                x = (attn + self.branch(y)).add_(q_x)  # q_x + (attn + branch)
                return b.ls_2(b.mlp(b.ln_2(x))).add_(x)  # x + mlp
            x = q_x + attn
            return b.ls_2(b.mlp(b.ln_2(x))).add_(x).add_(self.branch(y))  # (x + mlp) + branch
        else:
            y = a.ln1(b)(q_x)
            attn = a.attention(b, y, args, kwargs)
        if self.placement == "attention":
            x = q_x + (attn + self.branch(y))
            out = x + a.mlp(b, x)
        else:
            x = q_x + attn
            out = x + a.mlp(b, x) + self.branch(y)
        return (out,) if a.returns_tuple() else out

    def _frozen_parts(self, q_x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(LN1 q_x, attention term) of `frozen_input`, computed on the first call and reused while the
        input, the mask, the base's weights (frozen, unchanged) and the autocast state stay the same.
        Exact: the same tensors the block would compute again; nothing that trains enters them."""
        b = self.base
        params = list(b.parameters())
        dev = q_x.device.type
        key = (
            q_x._version,
            None if mask is None else mask._version,
            tuple(p._version for p in params),
            torch.is_autocast_enabled(dev),
            torch.get_autocast_dtype(dev),
        )
        if q_x.requires_grad or any(p.requires_grad for p in params):
            y = b.ln_1(q_x)
            return y, b.ls_1(self._attention(y, y, mask))
        c = self._frozen
        if c is None or c[0] is not q_x or c[1] is not mask or c[2] != key:
            self._frozen = None
            with torch.no_grad():
                y = b.ln_1(q_x)
                attn = b.ls_1(self._attention(y, y, mask))
            self._frozen = c = (q_x, mask, key, y, attn)
        return c[3], c[4]

    def keep_frozen_input(self, x: torch.Tensor | None) -> None:
        """Set `frozen_input` (None: none; the kept parts of another input are dropped)."""
        self.frozen_input = x
        if self._frozen is not None and self._frozen[0] is not x:
            self._frozen = None

    def _inference(self, q_x: torch.Tensor, y: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """`forward` without autograd (open_clip): the same sums, accumulated in place into the fresh
        attention and MLP outputs instead of new (B, N, d) tensors for every addition."""
        b, branch = self.base, self.branch
        # `add_to` bypasses the branch's __call__: only without hooks that would expect to see the call
        add_to = getattr(branch, "add_to", None) if not branch.training and not _hooked(branch) else None

        def plus_branch(t: torch.Tensor) -> torch.Tensor:
            return add_to(t, y) if add_to is not None else t.add_(branch(y))

        if self.placement == "attention":
            x = plus_branch(attn).add_(q_x)  # q_x + (attn + branch)
            return b.ls_2(b.mlp(b.ln_2(x))).add_(x)  # x + mlp
        x = attn.add_(q_x)  # q_x + attn
        return plus_branch(b.ls_2(b.mlp(b.ln_2(x))).add_(x))  # (x + mlp) + branch

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
        return (
            torch.is_grad_enabled()
            and isinstance(a, nn.MultiheadAttention)
            and a.batch_first
            and a._qkv_same_embed_dim
            and a.in_proj_bias is not None
            and a.bias_k is None
            and not a.add_zero_attn
            and (a.dropout == 0 or not a.training)
        )

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
            q, k, v = _heads(q_x, w, bias, heads, 3)
        else:
            (q,) = _heads(q_x, w[:d], bias[:d], heads, 1)
            k, v = _heads(kv_x, w[d:], bias[d:], heads, 2)
        if mask is not None:
            mask = (mask.unsqueeze(1) if mask.dim() == 3 else mask).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return F.linear(out.transpose(1, 2).reshape(bsz, nq, d), a.out_proj.weight, a.out_proj.bias)

    def extra_repr(self) -> str:
        return f"placement={self.placement!r}, family={self.anatomy.family!r}"
