"""MetaPrompt (Zhao et al., TIP 2024): deep uncoupled prompts in both towers, each paired with the other
tower's frozen feature, and a class-split meta step on the text prompts.

    text  : "X X {c}." with tokens 1..n = P^t_0; text block i (1 <= i < L) input tokens 1..n = P^t_i
    image : P^v_0 appended after the patch tokens (before ln_pre); image block i input last n = P^v_i
    logits_i = 100 x W_zs^T           x    = prompted image feature,  W_zs = frozen zero-shot classifier
    logits_t = 100 x_zs T^T           x_zs = frozen image feature,    T    = prompted text features
    logits   = (logits_i + logits_t) / 2
    L        = CE(logits, y) + CE(logits_i, y) + CE(logits_t, y)                 (one optimiser step)

Meta step (after every optimiser step, text prompts only, image prompts frozen): shuffle the classes,
cut them into N groups; for each group G_i with >= 2 classes and images on both sides:
    (a) one optimiser step on CE(logits_t) of the other groups' images over the other groups' classes;
    (b) g_i = d CE(logits_t of G_i's images over G_i's classes) / d P^t   (first order, adapted prompts);
    (c) P^t <- the snapshot taken before (a).
then P^t <- P^t - lr * META_STEP * sum_i g_i. The two official-code behaviours that change this
(`alias_reset`, `frozen_prompt_momentum`: docs/baselines.md) are switches, on by default.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dra.backbones import CLIPBackbone
from dra.backbones.tokens import AppendTokens, ReplaceTokens
from dra.backbones.wrapping import bypassed, unwrap
from dra.config import MetaPromptConfig
from dra.errors import SettingsError
from dra.methods.base import DEFAULT_TEMPLATE, ClassifierModel
from dra.methods.templates import templates_for, zero_shot_classifier


class DeepPrompts(nn.Module):
    """P^t (L, n_ctx, D_t) and P^v (L, n_pro, D_v), N(0, 0.02^2); layer 0 = the input tokens."""

    def __init__(self, backbone: CLIPBackbone, config: MetaPromptConfig) -> None:
        super().__init__()
        device = backbone.text_device
        self.text = nn.Parameter(torch.randn(config.layers, config.n_ctx, backbone.text_width, device=device) * 0.02)
        self.image = nn.Parameter(torch.randn(config.layers, config.n_pro, backbone.image_width, device=device) * 0.02)


def split_classes(n: int, groups: int) -> list[list[int]]:
    """The official split: a random order of the n classes cut into chunks of ceil(n / groups)."""
    order = torch.randperm(n).tolist()
    m = (n - 1) // groups + 1
    return [order[i * m : (i + 1) * m] for i in range(groups)]


def select(labels: torch.Tensor, classes: list[int], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the batch whose label is in `classes`, and their labels re-indexed within `classes`."""
    relabel = torch.full((n,), -1, dtype=torch.long, device=labels.device)
    relabel[torch.tensor(classes, dtype=torch.long, device=labels.device)] = torch.arange(
        len(classes), device=labels.device
    )
    new = relabel[labels]
    rows = (new >= 0).nonzero().flatten()
    return rows, new[rows]


class MetaPrompt(ClassifierModel):
    def __init__(
        self,
        backbone: CLIPBackbone,
        classnames: list[str],
        config: MetaPromptConfig | None = None,
        template: str = DEFAULT_TEMPLATE,
    ) -> None:
        self.config = cfg = config or MetaPromptConfig()
        super().__init__(backbone, classnames, template)
        blocks = min(len(backbone.text_blocks), len(backbone.image_blocks))
        if cfg.layers > blocks:
            raise SettingsError(f"metaprompt.layers {cfg.layers} exceeds the {blocks} blocks of {backbone.name}")
        self.prompts_deep = DeepPrompts(backbone, cfg)
        self._wrapped = [backbone.image_input_slot]
        backbone.wrap_image_input(lambda base: AppendTokens(base, lambda: self.prompts_deep.image[0]))
        for i in range(1, cfg.layers):
            backbone.wrap_block(
                "text", i, lambda base, i=i: ReplaceTokens(base, lambda: self.prompts_deep.text[i], start=1)
            )
            backbone.wrap_block(
                "image", i, lambda base, i=i: ReplaceTokens(base, lambda: self.prompts_deep.image[i], start=None)
            )
            self._wrapped += [(backbone.text_blocks, str(i)), (backbone.image_blocks, str(i))]
        self._tokens: tuple | None = None
        self._zero_shot: tuple | None = None
        self._parts: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- text ---------------------------------------------------------------------------------------
    @property
    def prompts(self) -> list[str]:
        """ "X X {class}." (no template words); the placeholders' embeddings are replaced by P^t_0."""
        return [f"{' '.join(['X'] * self.config.n_ctx)} {c.replace('_', ' ')}." for c in self.classnames]

    @property
    def text_trainable(self) -> bool:
        return True

    def prompt_tokens(self) -> tuple[torch.Tensor, torch.Tensor]:
        key = (tuple(self.prompts), self.backbone.text_device)
        if self._tokens is None or self._tokens[0] != key:
            tokens = self.backbone.tokenize(list(key[0]))
            self._tokens = (key, tokens, self.backbone.token_embeddings(tokens))
        return self._tokens[1], self._tokens[2]

    def compute_text_features(self, classes: list[int] | None = None) -> torch.Tensor:
        """T: prompted text features of every class, or of `classes` (indices) only."""
        tokens, embeddings = self.prompt_tokens()
        if classes is not None:
            index = torch.tensor(classes, dtype=torch.long, device=tokens.device)
            tokens, embeddings = tokens[index], embeddings[index]
        n = self.config.n_ctx
        ctx = self.prompts_deep.text[0].to(embeddings.dtype).expand(embeddings.shape[0], -1, -1)
        x = torch.cat([embeddings[:, :1], ctx, embeddings[:, 1 + n :]], dim=1)
        return self.backbone.encode_text_embeddings(x, tokens)

    def zero_shot_weights(self) -> torch.Tensor:
        """W_zs: frozen CLIP's classifier from the hand-written template(s) (cached per class set)."""
        key = (tuple(self.classnames), self.template, self.backbone.text_device)
        if self._zero_shot is None or self._zero_shot[0] != key:
            templates = templates_for(self.template, self.config.imagenet_ensemble)
            self._zero_shot = (key, zero_shot_classifier(self.backbone, self.classnames, templates))
        return self._zero_shot[1]

    # -- image --------------------------------------------------------------------------------------
    @torch.no_grad()
    def frozen_image_features(self, images: torch.Tensor) -> torch.Tensor:
        """x_zs: CLIP's own image feature (the prompts are out of the way for this pass)."""
        with bypassed(self.backbone.clip):
            return self.backbone.encode_image(images)

    # -- forward and loss ---------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        scale = self.backbone.logit_scale
        x = self.image_features(images)
        x_zs = self.frozen_image_features(images).to(x.dtype)
        logits_i = scale * x @ self.zero_shot_weights().to(x.dtype).t()
        logits_t = scale * x_zs @ self.text_features().to(x.dtype).t()
        self._parts = (logits_i, logits_t) if self.training else None
        return (logits_i + logits_t) / 2

    def loss(self, logits: torch.Tensor, labels: torch.Tensor):
        loss, parts = super().loss(logits, labels)
        if self._parts is not None:
            ce_i = F.cross_entropy(self._parts[0].float(), labels)
            ce_t = F.cross_entropy(self._parts[1].float(), labels)
            loss = loss + ce_i + ce_t
            parts.update(ce_image=ce_i.detach(), ce_text=ce_t.detach())
        return loss, parts

    def _text_logits(self, x_zs: torch.Tensor, classes: list[int]) -> torch.Tensor:
        return self.backbone.logit_scale * x_zs @ self.compute_text_features(classes).to(x_zs.dtype).t()

    def after_step(self, images: torch.Tensor, labels: torch.Tensor, optimizer, autocast) -> None:
        """The class-split first-order meta step on P^t (module docstring)."""
        cfg = self.config
        text, image = self.prompts_deep.text, self.prompts_deep.image
        n = len(self.classnames)
        groups = split_classes(n, cfg.meta_splits)
        lr = optimizer.param_groups[0]["lr"]
        snapshot = text.detach().clone()
        with autocast():
            x_zs = self.frozen_image_features(images)
        image.requires_grad_(False)
        if not cfg.frozen_prompt_momentum:
            image.grad = None  # torch >= 2: a parameter without a gradient is not stepped
        grads, reset = [], False
        try:
            for i, own in enumerate(groups):
                other = [c for j, g in enumerate(groups) if j != i for c in g]
                own_rows, own_labels = select(labels, own, n)
                other_rows, other_labels = select(labels, other, n)
                if len(own) < 2 or not len(own_rows) or not len(other_rows):
                    continue
                with autocast():  # (a) the inner step on the other groups
                    inner = F.cross_entropy(self._text_logits(x_zs[other_rows], other).float(), other_labels)
                optimizer.zero_grad(set_to_none=False)  # torch 1.10's zero_grad: gradients stay, zeroed
                inner.backward()
                optimizer.step()
                with autocast():  # (b) the adapted prompts on this group
                    outer = F.cross_entropy(self._text_logits(x_zs[own_rows], own).float(), own_labels)
                grads.append(torch.autograd.grad(outer, text)[0])
                if not (cfg.alias_reset and reset):  # (c); aliased, only the first reset restores
                    with torch.no_grad():
                        text.copy_(snapshot)
                reset = True
            with torch.no_grad():
                for g in grads:
                    text.sub_(lr * cfg.meta_step * g)
        finally:
            image.requires_grad_(True)
            optimizer.zero_grad(set_to_none=True)

    # -- bookkeeping --------------------------------------------------------------------------------
    def unload(self) -> None:
        for parent, name in self._wrapped:
            unwrap(parent, name)
        self._wrapped = []

    def learned_modules(self) -> dict[str, nn.Module]:
        return {"prompts": self.prompts_deep}

    def parameter_counts(self) -> dict[str, int]:
        text, image = self.prompts_deep.text.numel(), self.prompts_deep.image.numel()
        return {"trainable": text + image, "image": image, "text": text}
