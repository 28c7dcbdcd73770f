"""CoOp (Zhou et al., IJCV 2022): learned context vectors in place of the prompt's words.

    prompt_c = [SOS][ctx_1 .. ctx_M][tokens of class c]["."][EOT]       (ctx shared by all classes)
    t_c      = normalize(TextEncoder(prompt_c)),   logits = 100 * normalize(f(x)) @ t^T

The context is initialised from the token embeddings of "a photo of a" (M = 4), so that before
training CoOp equals zero-shot CLIP with that prompt.
Official checkpoints (KaiyangZhou/CoOp): `coop_key` and `coop_config`, the class's `official_layout`.
"""

from __future__ import annotations

import torch
from torch import nn

from dra.backbones import CLIPBackbone
from dra.config import CoOpConfig
from dra.errors import SettingsError
from dra.methods.base import DEFAULT_TEMPLATE, ClassifierModel
from dra.methods.official import OfficialLayout


class PromptContext(nn.Module):
    """The M learned context vectors (M, D) that replace token positions 1..M of every prompt.

    With `init_words` they start as those words' token embeddings (the first `n_ctx` of them, or all
    when `n_ctx` is None) and the prompts read the words; without, N(0, 0.02^2) behind "X" placeholders.
    """

    def __init__(self, backbone: CLIPBackbone, init_words: str, n_ctx: int | None) -> None:
        super().__init__()
        device = backbone.text_device
        if init_words:
            tokens = backbone.tokenizer([init_words])  # on the CPU: its EOT position is read here
            n = int(tokens[0].argmax()) - 1 if n_ctx is None else n_ctx  # the words between SOS and EOT
            init = backbone.token_embeddings(tokens.to(device))[0, 1 : 1 + n].float().clone()
            self.words = init_words
        else:
            room = int(backbone.tokenizer(["x"]).shape[1]) - 3  # the context length less SOS, EOT, one name token
            if not 1 <= n_ctx <= room:
                raise SettingsError(
                    f"n_ctx={n_ctx} does not fit the text tower's prompt; choose a value in [1, {room}]"
                )
            init = torch.randn(n_ctx, backbone.text_width) * 0.02  # N(0, 0.02^2), CoOp's random init
            self.words = " ".join(["X"] * n_ctx)
        self.ctx = nn.Parameter(init.to(device))

    def __len__(self) -> int:
        return self.ctx.shape[0]

    def insert(self, embeddings: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings (C, L, D) with positions 1..M replaced by the context (M, D) or (C, M, D)."""
        ctx = self.ctx if ctx is None else ctx
        ctx = ctx.to(embeddings.dtype).expand(embeddings.shape[0], -1, -1)
        return torch.cat([embeddings[:, :1], ctx, embeddings[:, 1 + len(self) :]], dim=1)


def coop_key(key: str) -> str | None:
    """KaiyangZhou/CoOp `prompt_learner` keys (Dassl saves the prompt learner alone): the context."""
    return "context.ctx" if key in ("ctx", "prompt_learner.ctx") else None


def coop_config(tensors: dict[str, torch.Tensor]) -> dict:
    """CoOp's context length from the checkpoint: 4 is the published "a photo of a" init (its words are
    replaced by the context anyway); another length reads as that many placeholders."""
    n = int(tensors["context.ctx"].shape[0])
    return {"ctx_init": "a photo of a"} if n == 4 else {"ctx_init": "", "n_ctx": n}


class CoOp(ClassifierModel):
    official_layout = OfficialLayout("KaiyangZhou/CoOp", coop_key, coop_config)

    def __init__(
        self,
        backbone: CLIPBackbone,
        classnames: list[str],
        config: CoOpConfig | None = None,
        template: str = DEFAULT_TEMPLATE,
    ) -> None:
        self.config = config or self.config_class()
        super().__init__(backbone, classnames, template)
        self.context = PromptContext(backbone, *self._context_words())
        self._frozen_tokens: tuple[tuple[str, ...], torch.Tensor, torch.Tensor] | None = None

    def _context_words(self) -> tuple[str, int | None]:
        """CoOp: all of `ctx_init`'s words become the context; without words, `n_ctx` placeholders."""
        return self.config.ctx_init, None if self.config.ctx_init else self.config.n_ctx

    @property
    def prompts(self) -> list[str]:
        """What the prompts read before the context replaces its words: "<ctx words> <class name>."."""
        return [f"{self.context.words} {c.replace('_', ' ')}." for c in self.classnames]

    @property
    def text_trainable(self) -> bool:
        return True

    def prompt_tokens(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and frozen token embeddings of the current prompts (cached per class set)."""
        key = tuple(self.prompts)
        device = self.backbone.text_device
        if self._frozen_tokens is None or self._frozen_tokens[0] != key or self._frozen_tokens[1].device != device:
            tokens = self.backbone.tokenize(list(key))
            self._frozen_tokens = (key, tokens, self.backbone.token_embeddings(tokens))
        return self._frozen_tokens[1], self._frozen_tokens[2]

    def compute_text_features(self) -> torch.Tensor:
        tokens, embeddings = self.prompt_tokens()
        return self.backbone.encode_text_embeddings(self.context.insert(embeddings), tokens)

    def learned_modules(self) -> dict[str, nn.Module]:
        return {"context": self.context}

    def parameter_counts(self) -> dict[str, int]:
        """Everything a prompt learner learns shapes the text features (MaPLe splits off its couplings)."""
        n = sum(p.numel() for p in self.trainable_parameters())
        return {"trainable": n, "image": 0, "text": n}
