"""CLIP with one adapter branch beside blocks h..L of the image and/or text encoder.

Shared by `dra` (DynamicRankAdapter) and `adapter` (PlainAdapter): the two differ only in the module
each branch wraps. Each adapted block becomes a `ParallelBranchBlock` that owns its `AdapterBranch`;
checkpoints name the branches `adapters.<image|text>.<block, 1-based>`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from dra.adapters import AdapterBranch
from dra.adapters.dynamic_rank import NoiseSource
from dra.backbones import TOWERS, BackboneError, CLIPBackbone, ParallelBranchBlock
from dra.config import TrainSettings
from dra.methods.base import DEFAULT_TEMPLATE, ClassifierModel


class AdaptedCLIP(ClassifierModel):
    adapter_class: type[nn.Module]

    def __init__(
        self, backbone: CLIPBackbone, classnames: list[str], config=None, template: str = DEFAULT_TEMPLATE
    ) -> None:
        super().__init__(backbone, classnames, template)
        self.config = config = config or self.config_class()
        # tower -> {block (1-based): branch}; the branches themselves live in the wrapped blocks.
        self._branches: dict[str, dict[int, nn.Module]] = {}
        towers = self.adapted_towers()
        start = config.start_layer
        for tower in towers:
            blocks = backbone.blocks(tower)
            if start > len(blocks):
                raise BackboneError(
                    f"start_layer {start} is past the last of the {len(blocks)} {tower} blocks "
                    f"of {backbone.name}; choose h in 1..{len(blocks)}"
                )
        for tower in towers:
            self._branches[tower] = {}
            for index in range(start - 1, self.last_block(tower)):
                branch = self.make_branch(tower, index + 1)
                backbone.wrap_block(tower, index, lambda block, b=branch: ParallelBranchBlock(block, b, self.placement))
                self._branches[tower][index + 1] = branch
        # Text blocks before the first adapted one are frozen: their output is cached per class set.
        self.text_start = start - 1 if "text" in towers else len(backbone.text_blocks)
        self._prefix: tuple[tuple[str, ...], torch.Tensor, torch.Tensor] | None = None
        # Training with many classes: the adapted text blocks run in chunks of `text_chunk` classes, each
        # checkpointed, when there are more than `text_chunk_above` classes (0: never); see `_chunked_text`.
        self.text_chunk = TrainSettings.text_chunk
        self.text_chunk_above = TrainSettings.text_chunk_above

    def set_text_chunks(self, chunk: int, above: int) -> None:
        self.text_chunk, self.text_chunk_above = int(chunk), int(above)

    # -- what a subclass decides: which towers and blocks, which branch, where ------------------------
    def adapted_towers(self) -> list[str]:
        return [t for t, on in zip(TOWERS, (self.config.adapts_image, self.config.adapts_text)) if on]

    def last_block(self, tower: str) -> int:
        """The last adapted block (1-based, inclusive) of `tower`."""
        return len(self.backbone.blocks(tower))

    def make_branch(self, tower: str, block: int) -> nn.Module:
        """The module added beside block `block` (1-based) of `tower`; it returns what the block adds."""
        return AdapterBranch(self.adapter_class(self.backbone.width(tower), self.config), self.config)

    @property
    def placement(self) -> str:
        return self.config.placement

    def set_classnames(self, classnames: list[str]) -> None:
        super().set_classnames(classnames)
        self._prefix = None

    def unload(self) -> None:
        """Put CLIP's original blocks back (the backbone is plain CLIP again; the branches are dropped)."""
        for tower, branches in self._branches.items():
            for block in branches:
                self.backbone.unwrap_block(tower, block - 1)
        self._branches = {}

    # -- text with a cached frozen prefix -----------------------------------------------------------
    def text_prefix(self) -> tuple[torch.Tensor, torch.Tensor]:
        key = tuple(self.prompts)
        device = self.backbone.text_device
        if self._prefix is None or self._prefix[0] != key or self._prefix[1].device != device:
            tokens = self.backbone.tokenize(self.prompts)
            self._prefix = (key, tokens, self.backbone.text_prefix(tokens, self.text_start))
        return self._prefix[1], self._prefix[2]

    def compute_text_features(self) -> torch.Tensor:
        tokens, hidden = self.text_prefix()
        n = tokens.shape[0]
        training = self.training and torch.is_grad_enabled()
        chunked = (
            training
            and self.text_chunk > 0
            and n > self.text_chunk
            and n > self.text_chunk_above
            and bool(self._branches.get("text"))
        )
        first = self.backbone.text_blocks[self.text_start] if self._branches.get("text") else None
        if isinstance(first, ParallelBranchBlock):
            # the frozen prefix enters the first adapted block unchanged at every training step: that block
            # keeps LN1 of it and its attention term (exact; ParallelBranchBlock.frozen_input). Not when
            # chunked (many classes: no second copy of the prefix's size) nor in evaluation.
            first.keep_frozen_input(hidden if training and not chunked else None)
        if chunked:
            return self._chunked_text(tokens, hidden, self.text_chunk)
        if not self.training and not torch.is_grad_enabled() and 0 < self.text_chunk < n and n > self.text_chunk_above:
            # evaluation (no noise, no graph): the same features a chunk at a time, for the same flat memory
            return torch.cat(
                [
                    self.backbone.encode_text_from(
                        hidden[i : i + self.text_chunk], tokens[i : i + self.text_chunk], self.text_start
                    )
                    for i in range(0, n, self.text_chunk)
                ]
            )
        return self.backbone.encode_text_from(hidden, tokens, self.text_start, pooled_only=self.training)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        # training: the last block computes the CLS token alone (exact, see ParallelBranchBlock.rows)
        return self.backbone.encode_image(images, pooled_only=self.training)

    def _chunked_text(self, tokens: torch.Tensor, hidden: torch.Tensor, chunk: int) -> torch.Tensor:
        """The training text features of many classes with the memory of `chunk` classes, exactly.

        Each chunk of classes runs through the adapted blocks under a non-reentrant
        `torch.utils.checkpoint`: its activations are dropped after the forward pass and recomputed,
        one chunk at a time, when backward reaches it, so the peak holds one chunk's activations, not
        every class's. The chunks' features are concatenated for the loss as before. Exactness:
        - noise: one `NoiseSource` for all classes draws each text adapter's Gumbel noise for every
          class at once, in the unchunked order (first chunk, blocks in order, token then channel),
          and hands each chunk its rows, in the forward pass and in the recomputation alike; so the
          masks are those of the unchunked step and the RNG ends where it would.
        - L1 term: each chunk's branch terms come out of the checkpointed function; a block's term is
          their sum (`reg_reduction="sum"`) or their mean weighted by the chunk's share of the rows
          (`"mean"`: every row has the same number of elements), so `regularization()` and its
          gradient are those of the unchunked step.
        """
        branches = list(self._branches["text"].values())
        source = NoiseSource(tokens.shape[0])
        n = tokens.shape[0]
        feats, regs = [], []
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            f, r = checkpoint(
                self._encode_rows,
                hidden[start:stop],
                tokens[start:stop],
                source,
                start,
                stop,
                branches,
                use_reentrant=False,
            )
            feats.append(f)
            if r is not None:
                regs.append(r * ((stop - start) / n if self.config.reg_reduction == "mean" else 1.0))
        total = torch.stack(regs).sum(0) if regs else None
        for i, b in enumerate(branches):
            b.reg = None if total is None else total[i]
        return torch.cat(feats)

    def _encode_rows(self, hidden, tokens, source: NoiseSource, start: int, stop: int, branches):
        adapters = [b.adapter for b in branches if hasattr(b.adapter, "noise_source")]
        source.select(start, stop)
        for a in adapters:
            a.noise_source = source
        try:
            f = self.backbone.encode_text_from(hidden, tokens, self.text_start, pooled_only=True)
        finally:
            for a in adapters:
                a.noise_source = None
        terms = [b.reg for b in branches]
        return f, (torch.stack(terms) if all(t is not None for t in terms) else None)

    @property
    def text_trainable(self) -> bool:
        return "text" in self._branches

    # -- loss ---------------------------------------------------------------------------------------
    def regularization(self) -> dict[str, torch.Tensor | None]:
        """Sum of the branches' L1 terms from the last forward, per tower (None where absent)."""
        out: dict[str, torch.Tensor | None] = {"image": None, "text": None}
        for tower, branches in self._branches.items():
            terms = [b.reg for b in branches.values() if getattr(b, "reg", None) is not None]
            out[tower] = torch.stack(terms).sum() if terms else None
        return out

    def loss(self, logits: torch.Tensor, labels: torch.Tensor):
        loss, parts = super().loss(logits, labels)
        weights = {"image": self.config.reg_weight_image, "text": self.config.reg_weight_text}
        for tower, reg in self.regularization().items():
            if reg is not None:
                loss = loss + weights[tower] * reg.float()
                parts[f"reg_{tower}"] = reg.detach().float()
        return loss, parts

    # -- bookkeeping --------------------------------------------------------------------------------
    @property
    def adapters(self) -> dict[str, dict[str, AdapterBranch]]:
        """tower -> {block (1-based, as a string): branch}."""
        return {t: {str(k): b for k, b in branches.items()} for t, branches in self._branches.items()}

    def branches(self, tower: str) -> dict[int, AdapterBranch]:
        return dict(self._branches.get(tower, {}))

    def learned_modules(self) -> dict[str, nn.Module]:
        return {f"adapters.{t}.{k}": b for t, branches in self._branches.items() for k, b in branches.items()}

    def parameter_counts(self) -> dict[str, int]:
        counts = {
            t: sum(p.numel() for b in self._branches.get(t, {}).values() for p in b.parameters() if p.requires_grad)
            for t in TOWERS
        }
        return {"trainable": counts["image"] + counts["text"], **counts}
