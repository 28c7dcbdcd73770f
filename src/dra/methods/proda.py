"""ProDA (Lu et al., CVPR 2022), our re-implementation from the paper (no official code; docs/baselines.md).

K prompts of M learned tokens each; prompt k puts the class name at the end (k >= K/2), in the
middle (K/4 <= k < K/2: after the first M/2 tokens) or first (k < K/4):
    end:    [SOS][v_1 .. v_M][class]["."][EOT]       front: [SOS][class][v_1 .. v_M]["."][EOT]
w_{c,k} = normalize(TextEncoder(prompt_k(c))) are samples of a Gaussian per class, mean mu_c.
Training (a prompt mini-batch of K_b prompts per step estimates the Gaussian): for image x with label y,
    L_ce  = -log exp(tau mu_y.x) / sum_j exp(tau mu_j.x + tau^2/2 x^T (S_jj + S_yy - S_yj - S_jy) x)
with S_ij = the cross-covariance of classes i and j over the prompts, kept per embedding dimension
(diagonal in d: x^T S_ij x = sum_d x_d^2 S_ij[d]), tau = CLIP's logit scale; plus the diversity term
    L_div = mean_{k != l} |cos(e_k, e_l)|,   e_k = TextEncoder("[v^k_1 .. v^k_M] .")   (no class name)
L = L_ce + diversity_weight * L_div. Inference: logits = tau x . normalize(mu_c), mu_c over all K prompts.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dra.backbones import CLIPBackbone
from dra.config import ProDAConfig
from dra.methods.base import DEFAULT_TEMPLATE, ClassifierModel


def position_of(k: int, n_prompts: int) -> str:
    """Where prompt k puts the class name: 1/4 front, 1/4 middle, 1/2 end."""
    return "front" if k < n_prompts // 4 else "middle" if k < n_prompts // 2 else "end"


def layout(tokens: torch.Tensor, n_ctx: int, position: str) -> torch.Tensor:
    """(C, L) source index per output position: the "end" layout [SOS][ctx][class][rest] reordered so that
    the class tokens come first ("front") or after the first n_ctx // 2 context tokens ("middle")."""
    n, length = tokens.shape
    index = torch.arange(length, device=tokens.device).expand(n, -1).clone()
    if position == "end":
        return index
    head = 0 if position == "front" else n_ctx // 2
    for c, eot in enumerate(tokens.argmax(dim=-1).tolist()):
        n_class = eot - 2 - n_ctx  # tokens between the context and "."
        ctx = list(range(1, 1 + n_ctx))
        name = list(range(1 + n_ctx, 1 + n_ctx + n_class))
        index[c, 1 : 1 + n_ctx + n_class] = torch.tensor(ctx[:head] + name + ctx[head:], device=tokens.device)
    return index


def gaussian_upper_bound(x: torch.Tensor, w: torch.Tensor, labels: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """L_ce of the module docstring; x (B, D) normalised images, w (K, C, D) normalised prompt embeddings."""
    mu = w.mean(0)  # (C, D)
    dev = w - mu  # (K, C, D)
    k = w.shape[0]
    var = (dev * dev).sum(0) / k  # S_jj per dimension (C, D)
    x2 = x * x
    own = dev[:, labels]  # (K, B, D): deviations of each image's own class
    cross = torch.einsum("bd,kbd,kjd->bj", x2, own, dev) / k  # x^T S_yj x
    quad = x2 @ var.t() + (x2 * var[labels]).sum(-1, keepdim=True) - 2 * cross  # (B, C); 0 at j = y
    logits = tau * x @ mu.t() + 0.5 * tau * tau * quad
    return F.cross_entropy(logits, labels)


def diversity(e: torch.Tensor) -> torch.Tensor:
    """Mean |cos| between different prompts' class-free embeddings e (K, D), normalised."""
    k = e.shape[0]
    cos = (e @ e.t()).abs()
    return (cos.sum() - cos.diagonal().sum()) / (k * (k - 1))


class PromptSet(nn.Module):
    """The K x M learned context vectors, N(0, 0.02^2)."""

    def __init__(self, backbone: CLIPBackbone, config: ProDAConfig) -> None:
        super().__init__()
        shape = (config.n_prompts, config.n_ctx, backbone.text_width)
        self.ctx = nn.Parameter(torch.randn(*shape, device=backbone.text_device) * 0.02)


class ProDA(ClassifierModel):
    def __init__(
        self,
        backbone: CLIPBackbone,
        classnames: list[str],
        config: ProDAConfig | None = None,
        template=DEFAULT_TEMPLATE,
    ) -> None:
        self.config = config or ProDAConfig()
        super().__init__(backbone, classnames, template)
        self.prompt_set = PromptSet(backbone, self.config)
        self._tokens: tuple | None = None
        self._sampled: torch.Tensor | None = None

    @property
    def prompts(self) -> list[str]:
        """The "end" layout's text: M placeholders, the class name, "."."""
        return [f"{' '.join(['X'] * self.config.n_ctx)} {c.replace('_', ' ')}." for c in self.classnames]

    @property
    def text_trainable(self) -> bool:
        return True

    def prompt_tokens(self):
        """Token ids, frozen embeddings and the three layouts' source indices (cached per class set)."""
        key = (tuple(self.prompts), self.backbone.text_device)
        if self._tokens is None or self._tokens[0] != key:
            tokens = self.backbone.tokenize(list(key[0]))
            layouts = {p: layout(tokens, self.config.n_ctx, p) for p in ("front", "middle", "end")}
            self._tokens = (key, tokens, self.backbone.token_embeddings(tokens), layouts)
        return self._tokens[1:]

    def prompt_features(self, k: int) -> torch.Tensor:
        """(C, D) normalised features of prompt k for every class."""
        tokens, embeddings, layouts = self.prompt_tokens()
        m = self.config.n_ctx
        ctx = self.prompt_set.ctx[k].to(embeddings.dtype).expand(embeddings.shape[0], -1, -1)
        x = torch.cat([embeddings[:, :1], ctx, embeddings[:, 1 + m :]], dim=1)
        index = layouts[position_of(k, self.config.n_prompts)]
        x = x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        return self.backbone.encode_text_embeddings(x, tokens)  # the EOT position is that of the end layout

    def class_free_features(self, ks: list[int]) -> torch.Tensor:
        """(K_b, D) normalised features of "[ctx] ." for the prompts ks."""
        m = self.config.n_ctx
        tokens = self.backbone.tokenize([f"{' '.join(['X'] * m)} ."])
        embeddings = self.backbone.token_embeddings(tokens).expand(len(ks), -1, -1)
        ctx = self.prompt_set.ctx[ks].to(embeddings.dtype)
        x = torch.cat([embeddings[:, :1], ctx, embeddings[:, 1 + m :]], dim=1)
        return self.backbone.encode_text_embeddings(x, tokens.expand(len(ks), -1))

    def compute_text_features(self) -> torch.Tensor:
        """normalize(mu_c): over a sampled prompt mini-batch in training (kept for the loss), over all K else."""
        cfg = self.config
        if self.training and torch.is_grad_enabled():
            ks = torch.randperm(cfg.n_prompts)[: cfg.prompt_batch].tolist()
            w = torch.stack([self.prompt_features(k) for k in ks])
            self._sampled = (ks, w)
        else:
            w = torch.stack([self.prompt_features(k) for k in range(cfg.n_prompts)])
        return F.normalize(w.float().mean(0), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self._x = self.image_features(images) if self.training else None
        x = self._x if self._x is not None else self.image_features(images)
        return self.backbone.logit_scale * x @ self.text_features().to(x.dtype).t()

    def loss(self, logits: torch.Tensor, labels: torch.Tensor):
        if not (self.training and self._sampled is not None and self._x is not None):
            return super().loss(logits, labels)
        ks, w = self._sampled
        self._sampled = None
        ce = gaussian_upper_bound(self._x.float(), w.float(), labels, self.backbone.logit_scale.float())
        div = diversity(self.class_free_features(ks).float())
        loss = ce + self.config.diversity_weight * div
        return loss, {"ce": ce.detach(), "diversity": div.detach()}

    def learned_modules(self) -> dict[str, nn.Module]:
        return {"prompts": self.prompt_set}

    def parameter_counts(self) -> dict[str, int]:
        n = self.prompt_set.ctx.numel()
        return {"trainable": n, "image": 0, "text": n}
