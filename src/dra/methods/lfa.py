"""LFA (Ouali et al., ICCV 2023): a linear map on frozen image features, aligned to frozen class prototypes.

    x' = x W,   logits = logit_scale * normalize(x') @ t^T      x: frozen normalised image feature,
                                                               t_c: frozen prototype (hand-written template)
Fitting (all in `fit_cache`: LFA needs only features, extracted once, five crops per training image):
    1. beta-Procrustes:  U S V^T = svd(X^T Y),  W_0 = U V^T - beta (U V^T - I)     Y = t of each x's label
    2. refinement: full-batch AdamW on W, cosine per iteration to `final_lr`; each iteration one of the
       five crops (the same for every image), Gaussian noise (p 1/2), dropout (p 1/2), and the adaptive
       re-ranking loss over the k nearest prototypes j of x' (distances d between normalised vectors):
           L = mean_j max(0, d(x', t_y) + (1 - t_j . t_y) / scale - d(x', t_j))
    3. an EMA of W from the identity, momentum 0.9 + 0.1 (1 - exp(-5 min(i, n/2) / (n/2))).
Base classes (the classes it was fitted on) use W; any other class set (new classes) uses the EMA map.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from dra.config import LFAConfig
from dra.methods.base import DEFAULT_TEMPLATE, ClassifierModel
from dra.methods.templates import templates_for, zero_shot_classifier


def procrustes(x: torch.Tensor, y: torch.Tensor, beta: float) -> torch.Tensor:
    """W_0 - beta (W_0 - I), W_0 = U V^T from the SVD of x^T y (the orthogonal map closest to x -> y)."""
    u, _, vh = torch.linalg.svd(x.T @ y)
    w = u @ vh
    return w - beta * (w - torch.eye(w.shape[0], dtype=w.dtype, device=w.device))


def reranking_loss(v: torch.Tensor, prototypes: torch.Tensor, labels: torch.Tensor, knn: int, scale: float):
    """The adaptive re-ranking loss (module docstring) of mapped features v (N, D)."""
    v, t = F.normalize(v, dim=-1), F.normalize(prototypes, dim=-1)
    k = min(knn, t.shape[0])
    near, index = torch.cdist(v, t).sort(dim=1)
    anchor = (v - t[labels]).norm(dim=-1, keepdim=True)
    margins = (1.0 - (t[index[:, :k]] * t[labels].unsqueeze(1)).sum(-1)) / scale
    return (anchor + margins - near[:, :k]).clamp(min=0).mean()


def ema_momentum(i: int, iterations: int) -> float:
    """0.9 ramped towards 1 (LFA's log ramp-up over the first half of the iterations)."""
    ramp = iterations // 2
    return 0.9 + 0.1 * (1.0 if ramp == 0 else 1.0 - math.exp(-5.0 * min(i, ramp) / ramp))


def refine(w0: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor, cfg: LFAConfig):
    """(W, EMA map) after `cfg.iterations` full-batch AdamW steps; features (N, V, D)."""
    w = nn.Parameter(w0.clone())
    ema = torch.eye(w0.shape[0], dtype=w0.dtype, device=w0.device)
    opt = torch.optim.AdamW([w], lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(cfg.iterations, 1), eta_min=cfg.final_lr)
    for i in range(cfg.iterations):
        x = features[:, int(torch.randint(features.shape[1], ()))]  # one crop, the same for every image
        if cfg.noise_std > 0 and float(torch.rand(())) > 0.5:
            x = x + torch.randn_like(x) * cfg.noise_std
        if cfg.dropout > 0 and float(torch.rand(())) > 0.5:
            x = F.dropout(x, p=cfg.dropout)
        loss = reranking_loss(x @ w, prototypes, labels, cfg.knn, cfg.rerank_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        m = ema_momentum(i, cfg.iterations)
        ema = m * ema + (1.0 - m) * w.detach()
    return w.detach(), ema


class LinearAlignment(nn.Module):
    """W (learned: D x D, identity until fitted) and its EMA (a buffer: the map for new classes)."""

    def __init__(self, dim: int, device) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.eye(dim, device=device))
        self.register_buffer("ema", torch.eye(dim, device=device))


class LFA(ClassifierModel):
    trains_by_sgd = False  # fit_cache fits W

    def __init__(self, backbone, classnames, config: LFAConfig | None = None, template: str = DEFAULT_TEMPLATE):
        super().__init__(backbone, classnames, template)
        self.config = config or LFAConfig()
        self.align = LinearAlignment(backbone.clip.visual.output_dim, backbone.text_device)
        self.fit_classnames: list[str] | None = None

    @property
    def needs_cache(self) -> bool:
        return True

    def compute_text_features(self) -> torch.Tensor:
        """The frozen class prototypes t_c (the ImageNet ensemble where configured)."""
        templates = templates_for(self.template, self.config.imagenet_ensemble)
        return zero_shot_classifier(self.backbone, self.classnames, templates)

    def mapping(self) -> torch.Tensor:
        """W for the classes it was fitted on (and before fitting), the EMA map for any other class set."""
        fitted_here = self.fit_classnames is None or self.fit_classnames == self.classnames
        return self.align.weight if fitted_here else self.align.ema

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        x = self.backbone.encode_image(images)
        return F.normalize(x @ self.mapping().to(x.dtype), dim=-1)

    # -- fitting ------------------------------------------------------------------------------------
    def _train_transform(self):
        from torchvision import transforms as T
        from torchvision.transforms import InterpolationMode

        p = self.backbone.preprocess
        per_crop = T.Compose([T.ToTensor(), T.Normalize(p.mean, p.std)])
        crops = T.FiveCrop(p.image_size) if self.config.five_crop else T.CenterCrop(p.image_size)
        return T.Compose(
            [
                T.Lambda(lambda im: im.convert("RGB")),
                T.Resize(p.image_size, interpolation=InterpolationMode.BICUBIC),
                crops,
                T.Lambda(lambda c: torch.stack([per_crop(x) for x in c]) if isinstance(c, tuple) else per_crop(c)),
            ]
        )

    def fit_cache(self, train_items, transforms, device, val_items=None, echo=None) -> None:
        from dra.methods.features import image_features

        cfg = self.config
        device = torch.device(device)
        self.to(device)
        was = self.training
        self.eval()
        name = f"lfa-{'five' if cfg.five_crop else 'center'}-crop-{self.backbone.preprocess.image_size}"
        features = image_features(self.backbone, train_items, self._train_transform(), device, name).to(device)
        labels = torch.tensor([d.label for d in train_items], device=device)
        with torch.no_grad():
            prototypes = self.compute_text_features().float().to(device)
        views = features.shape[1]
        x = features.flatten(0, 1)
        y = prototypes[labels].repeat_interleave(views, dim=0)
        with torch.no_grad():
            w0 = procrustes(x, y, cfg.beta)
        with torch.enable_grad():
            w, ema = refine(w0, features, labels, prototypes, cfg)
        with torch.no_grad():
            self.align.weight.copy_(w)
            self.align.ema.copy_(ema)
        self.fit_classnames = list(self.classnames)
        self.clear_text_cache()
        self.train(was)

    # -- checkpoints --------------------------------------------------------------------------------
    def learned_modules(self) -> dict[str, nn.Module]:
        return {"align": self.align}

    def checkpoint_metadata(self) -> dict:
        return {"fit_classnames": self.fit_classnames}

    def load_checkpoint_metadata(self, meta: dict) -> None:
        names = meta.get("fit_classnames")
        self.fit_classnames = list(names) if names is not None else None

    def parameter_counts(self) -> dict[str, int]:
        n = self.align.weight.numel()
        return {"trainable": n, "image": n, "text": 0}
