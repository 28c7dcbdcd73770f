"""What every method is: a module that maps images to logits over a set of class names.

    logits = logit_scale * normalize(image_features) @ normalize(text_features(classnames)).T

Subclasses decide how image and text features are computed and what the training loss adds to the
cross-entropy. Text features of a class set are computed once in eval mode and reused.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dra.backbones import CLIPBackbone
from dra.labels import DEFAULT_TEMPLATE, check_classnames, check_template
from dra.methods.official import OfficialLayout
from dra.methods.registry import spec_of


class _Registered:
    """A class attribute read from the method's registration (`dra.methods.registry`): the class's own, or
    that of the nearest registered class it derives from; None for a class that is no method."""

    def __init__(self, field: str) -> None:
        self.field = field

    def __get__(self, obj, owner=None):
        spec = spec_of(owner if owner is not None else type(obj))
        return None if spec is None else getattr(spec, self.field)


class ClassifierModel(nn.Module):
    method = _Registered("name")
    """The method's name (`dra`, `clip_lora`, ...): what settings and checkpoints call it."""
    config_class = _Registered("config")
    """The method's config dataclass (a section of the settings schema), or None (nothing to configure)."""
    config_section = _Registered("section")
    """The settings section it reads (`dra`, `mma`, `lora`, ...)."""
    official_layout: OfficialLayout | None = None
    """How checkpoints of the method's official code map onto it (`dra.methods.official`); None: not importable.
    Read from the class itself only: a subclass (CoCoOp of CoOp) does not inherit it."""
    trains_by_sgd: bool = True
    """False: the trainer never runs (zero-shot CLIP, Tip-Adapter's cache; LFA, whose `fit_cache` does all its
    fitting on features) and the `train` settings are unused."""

    def __init__(self, backbone: CLIPBackbone, classnames: list[str], template: str = DEFAULT_TEMPLATE) -> None:
        super().__init__()
        check_template(template, "the prompt template")
        self.backbone = backbone
        self.template = template
        self._eval_text: tuple[tuple[str, ...], torch.Tensor] | None = None
        self.set_classnames(classnames)

    # -- classes ------------------------------------------------------------------------------------
    def set_classnames(self, classnames: list[str]) -> None:
        """Switch the label space (e.g. base -> new classes); cached text features are dropped."""
        self.classnames = check_classnames(list(classnames) if isinstance(classnames, tuple) else classnames)
        self._eval_text = None

    @property
    def prompts(self) -> list[str]:
        return [self.template.format(c.replace("_", " ")) for c in self.classnames]

    @property
    def text_trainable(self) -> bool:
        """Whether training changes the text features (then they are recomputed every step)."""
        return False

    def clear_text_cache(self) -> None:
        """Forget cached text features (after the weights changed, e.g. a checkpoint was loaded)."""
        self._eval_text = None

    def train(self, mode: bool = True):
        if self.text_trainable:
            self.clear_text_cache()  # the text adapters will change
        return super().train(mode)

    # -- features -----------------------------------------------------------------------------------
    def compute_text_features(self) -> torch.Tensor:
        """(C, D) normalised text features of the current prompts."""
        return self.backbone.encode_text(self.backbone.tokenize(self.prompts))

    def _weights_version(self) -> tuple[int, ...]:
        """Version counters of the trainable parameters: any in-place change (optimiser step,
        `load_state_dict`, an in-place edit under no_grad, a loaded checkpoint) bumps them and so invalidates the cache."""
        return tuple(p._version for p in self.parameters() if p.requires_grad)

    def text_features(self) -> torch.Tensor:
        if self.training and self.text_trainable:
            return self.compute_text_features()
        key = (tuple(self.prompts), self._weights_version())
        if self._eval_text is None or self._eval_text[0] != key:
            with torch.no_grad():
                self._eval_text = (key, self.compute_text_features())
        return self._eval_text[1]

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone.encode_image(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        image = self.image_features(images)
        text = self.text_features()
        return self.backbone.logit_scale * image @ text.to(image.dtype).t()

    def set_text_chunks(self, chunk: int, above: int) -> None:
        """How training encodes the text of many classes (`train.text_chunk`, `train.text_chunk_above`): in
        chunks of `chunk` classes when there are more than `above` (exact either way; 0: never). Methods
        whose text features are computed once (nothing trainable on the text side) ignore it."""

    # -- training -----------------------------------------------------------------------------------
    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross-entropy plus whatever terms the method adds; returns (loss, detached parts for logging).

        The parts stay tensors so that a training step never waits for the device to report them.
        """
        ce = F.cross_entropy(logits.float(), labels)
        return ce, {"ce": ce.detach()}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def parameter_counts(self) -> dict[str, int]:
        n = sum(p.numel() for p in self.trainable_parameters())
        return {"trainable": n, "image": 0, "text": 0}

    def unload(self) -> None:
        """Take the method's modules out of the backbone's blocks (zero-shot CLIP put none in)."""

    def learned_modules(self) -> dict[str, nn.Module]:
        """The modules training changes, by checkpoint prefix (none for zero-shot CLIP)."""
        return {}

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what training changes, as `<prefix>.<name>` tensors: what a checkpoint holds."""
        return {
            f"{prefix}.{k}": v
            for prefix, module in self.learned_modules().items()
            for k, v in module.state_dict().items()
        }

    def load_adapter_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy `adapter_state_dict()`-shaped tensors into the learned modules (every key must fit)."""
        for prefix, module in self.learned_modules().items():
            own = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
            module.load_state_dict(own, strict=True)
        self.clear_text_cache()

    def method_config(self) -> dict:
        """What the checkpoint JSON records as `config`: the method's config, enough to rebuild it."""
        config = getattr(self, "config", None)
        return config.to_dict() if config is not None and hasattr(config, "to_dict") else {}

    def after_step(self, images: torch.Tensor, labels: torch.Tensor, optimizer, autocast) -> None:
        """After each optimiser step of the trainer, a method's own extra update on the same batch
        (MetaPrompt's class-split meta step); `autocast()` is the run's precision context. Most do nothing."""

    def fit_cache(self, train_items, transforms, device, val_items=None, echo=None) -> None:
        """Build what the method takes from the training set before (or instead of) SGD; most methods
        build nothing. Called by the protocols before training (Tip-Adapter's cache of image features)."""

    def finish_training(self, val_items, transforms, device) -> bool:
        """After SGD (called by the protocols): a last step that uses the training set's val split, e.g.
        Tip-Adapter-F's alpha / beta search; returns whether it changed what the checkpoint holds."""
        return False

    def resize_for(self, tensors: dict[str, torch.Tensor]) -> None:
        """Before a checkpoint's tensors are loaded: take shapes that depend on the training data."""

    def checkpoint_metadata(self) -> dict:
        """Extra JSON a checkpoint records for this method (e.g. the classes of Tip-Adapter's cache)."""
        return {}

    def load_checkpoint_metadata(self, meta: dict) -> None:
        """Read back what `checkpoint_metadata` recorded."""

    @property
    def needs_cache(self) -> bool:
        """Whether `fit_cache` builds something (the protocol then calls it, even with nothing to train)."""
        return False
