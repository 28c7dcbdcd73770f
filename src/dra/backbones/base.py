"""What a backbone offers the methods: a frozen CLIP seen as two stacks of blocks, and its errors.

`CLIPBackbone` is the interface every method is written against; `OpenCLIPBackbone`
(`dra.backbones.openclip`) and `HFCLIPBackbone` (`dra.backbones.hf`) implement it, and
`dra.backbones.factory.load_backbone` picks one by the model's name. What is the same for every
backbone (towers, wrapping a block or its attention, eval mode) is written here once.

- `wrap_block(tower, index, make)` puts a `ModuleWrapper` in place of one residual block;
  `unwrap_block` restores it. The wrappers are ordinary submodules: `print()` and `state_dict()` show them.
- `wrap_image_input(make)`: a wrapper where the image tokens (class token + patches + positions) enter the
  first block; it sees and returns (B, N, D) tokens and may append some (MaPLe's and MetaPrompt's image
  prompts). `image_input_slot` names that place for `unwrap`.
- Prompt methods (CoOp and its family) also need `token_embeddings` / `encode_text_embeddings`; a
  backbone without them says so with a `BackboneError`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from dra.backbones.wrapping import ModuleWrapper, WrapError, unwrap, wrap, wrappers
from dra.errors import DraError

TOWERS = ("image", "text")


class BackboneError(DraError, RuntimeError):
    """A CLIP model or its weights cannot be loaded; the message names the fix."""


class WeightsUnavailableError(BackboneError):
    """Named pretrained weights are neither cached here nor downloadable (offline): `dra demo` then runs
    the pocket world; every other backbone error (an unknown model, a bad file) stays an error."""


@dataclass(frozen=True)
class Preprocess:
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class CLIPBackbone(nn.Module, abc.ABC):
    """The frozen CLIP. Its own `train()` never leaves eval mode: adapters are the only trainable part.

    A subclass sets `clip` (the wrapped model), `info` (model, pretrained, quick_gelu: what a checkpoint
    records), `tokenizer` and `preprocess`, and implements the abstract members below."""

    clip: nn.Module
    info: dict
    preprocess: Preprocess

    @property
    def name(self) -> str:
        return self.info["model"]

    def train(self, mode: bool = True):
        """CLIP itself stays in eval mode; what methods put inside it (the wrappers) follows `mode`."""
        self.training = mode
        self.clip.eval()
        for wrapper in wrappers(self.clip):
            wrapper.train(mode)
        return self

    # -- the two stacks of blocks ------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def image_blocks(self) -> nn.ModuleList: ...

    @property
    @abc.abstractmethod
    def text_blocks(self) -> nn.ModuleList: ...

    @property
    @abc.abstractmethod
    def image_width(self) -> int: ...

    @property
    @abc.abstractmethod
    def text_width(self) -> int: ...

    @property
    @abc.abstractmethod
    def text_device(self) -> torch.device: ...

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.exp()

    def blocks(self, tower: str) -> nn.ModuleList:
        if tower not in TOWERS:
            raise ValueError(f"tower must be one of {TOWERS}, got {tower!r}")
        return self.image_blocks if tower == "image" else self.text_blocks

    def width(self, tower: str) -> int:
        return self.image_width if tower == "image" else self.text_width

    def wrap_block(self, tower: str, index: int, make: Callable[[nn.Module], ModuleWrapper]) -> ModuleWrapper:
        """Put `make(block)` in place of block `index` (0-based) of `tower`."""
        try:
            return wrap(self.blocks(tower), str(index), make)
        except WrapError as e:
            raise BackboneError(f"{tower} block {index + 1} of {self.name}: {e}") from e

    def unwrap_block(self, tower: str, index: int) -> nn.Module:
        return unwrap(self.blocks(tower), str(index))

    def wrap_attention(self, tower: str, index: int, make: Callable[[nn.Module], ModuleWrapper]) -> ModuleWrapper:
        """Put `make(attn)` in place of the attention (`nn.MultiheadAttention`) of block `index` (0-based)."""
        block = self.blocks(tower)[index]
        try:
            if isinstance(block, ModuleWrapper):
                raise WrapError(f"the block already carries a {type(block).__name__}")
            return wrap(block, "attn", make)
        except WrapError as e:
            raise BackboneError(f"{tower} block {index + 1} attention of {self.name}: {e}") from e

    def unwrap_attention(self, tower: str, index: int) -> nn.Module:
        return unwrap(self.blocks(tower)[index], "attn")

    # -- the image input ----------------------------------------------------------------------------
    @property
    def image_input_slot(self) -> tuple[nn.Module, str]:
        """(parent, attribute name) of the module the image tokens pass just before the first block."""
        raise BackboneError(
            f"{self.name}: this backbone offers no place to add image prompts (MaPLe, MetaPrompt); "
            "use an open_clip ViT (e.g. ViT-B-16)"
        )

    def wrap_image_input(self, make: Callable[[nn.Module], ModuleWrapper]) -> ModuleWrapper:
        """Put `make(module)` in `image_input_slot`: it sees and returns the (B, N, D) image tokens."""
        parent, name = self.image_input_slot
        try:
            return wrap(parent, name, make)
        except WrapError as e:
            raise BackboneError(f"the image input of {self.name}: {e}") from e

    # -- features -------------------------------------------------------------------------------------
    @abc.abstractmethod
    def encode_image(self, images: torch.Tensor, pooled_only: bool = False) -> torch.Tensor:
        """Normalised image features; `pooled_only` lets the last block compute the pooled token alone."""

    @abc.abstractmethod
    def tokenize(self, prompts: list[str]) -> torch.Tensor: ...

    @abc.abstractmethod
    def text_prefix(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """Hidden states entering text block `start` (0-based), as `encode_text_from` takes them."""

    @abc.abstractmethod
    def encode_text_from(
        self, hidden: torch.Tensor, tokens: torch.Tensor, start: int, frozen: bool = False, pooled_only: bool = False
    ) -> torch.Tensor:
        """Normalised text features from the hidden states entering block `start`; `frozen` runs CLIP's
        own blocks, past any wrapper a method put in their place."""

    def encode_text(self, tokens: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """Normalised text features; `frozen`: of CLIP alone (methods' reference features, e.g. KgCoOp's)."""
        return self.encode_text_from(self.text_prefix(tokens, 0), tokens, 0, frozen)

    def text_pool_rows(self, tokens: torch.Tensor) -> torch.Tensor | None:
        """Index of the token each prompt's features are pooled from (None: not one token per prompt)."""
        return None

    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        """(C, L, D) frozen token embeddings, without the positional embedding (prompt methods replace some)."""
        raise BackboneError(
            f"{self.name}: prompt methods (CoOp and its family) need token embeddings, which this backbone "
            "does not offer; use an open_clip model (e.g. ViT-B-16)"
        )

    def encode_text_embeddings(self, embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Normalised text features of token embeddings in which a method put its own vectors."""
        raise BackboneError(
            f"{self.name}: prompt methods (CoOp and its family) need token embeddings, which this backbone "
            "does not offer; use an open_clip model (e.g. ViT-B-16)"
        )
