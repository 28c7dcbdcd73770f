"""Method configs: `DRAConfig` (every switch of the DRA adapter, the paper's values as defaults) and one
dataclass per baseline with its published values (`MMAConfig`, `LoRAConfig`, `CLIPAdapterConfig`,
`TipAdapterConfig`, ...). Each is a section of the settings schema, named by its `section` (the methods'
registration, `dra.methods.registry`, says which method reads which).

Over 400 lines on purpose: thirteen small dataclasses, one per published method, each field documented
against its paper or official code; splitting them would scatter one table of defaults over many files.

Each DRAConfig field maps to a line of docs/design.md section 1 or an ablation of the paper (Tables 4, 5,
Fig. 3); the baselines' fields are described in docs/baselines.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from dra.config.fields import check_fields
from dra.errors import SettingsError

BRANCHES = ("image", "text", "both")
PLACEMENTS = ("attention", "block")
REDUCTIONS = ("mean", "sum", "sample_sum")


@dataclass
class DRAConfig:
    section = "dra"
    """The settings section of these fields (a class attribute, not a field)."""

    # -- shape of the adapter ------------------------------------------------------------------
    rank: int = 32
    """r: the bottleneck width and the highest rank a token can get (Fig. 3a)."""
    start_layer: int = 5
    """h (1-based): adapters sit in blocks h..L of each encoder (Fig. 3b; 7 for cross-dataset)."""
    num_groups: int = 4
    """K token-importance groups (Table 5)."""
    rank_ratios: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4)
    """e_i: group i keeps floor(e_i * r) channels, scaled by 1/e_i (Table 5)."""
    scale: float = 0.001
    """s: the adapter branch is added as s * A(LN1(x))."""
    # -- ablations (Table 4; the plain-adapter "Baseline" row is the method `adapter`) --------------
    branches: str = "both"
    """Which encoders get adapters: "image" (DRA-V), "text" (DRA-T) or "both" (DRA-T&V)."""
    channel_response: bool = True
    """CR: keep the channels of highest response; off keeps the first floor(e_i r) channels by index."""
    regularization: bool = True
    """L1 term between masked (train) and unmasked (eval) adapter outputs (Eq. 19)."""
    reg_weight_text: float = 1.0
    """lambda_T (Eq. 20)."""
    reg_weight_image: float = 1.0
    """lambda_V (Eq. 20)."""
    reg_reduction: str = "mean"
    """"mean" over the block output's elements; "sum" over all of them (batch included); "sample_sum":
    Eq. 19 read literally, the sum over the N*d elements of each sample, then the mean over the batch."""
    # -- choices docs/design.md makes where the paper is open ------------------------------------------
    output_relu: bool = True
    """The ReLU after `up` (Eqs. 8, 17, 18); False gives the MMA-style linear output."""
    learnable_scores: bool = True
    """Straight-through soft ranks let gradients reach token_proj/channel_proj; False = literal sort."""
    relax_temperature: float = 1.0
    """Temperature of the pairwise sigmoids of the soft rank (score units)."""
    noise_temperature: float = 1.0
    """tau in argsort(a + tau * g), g ~ Gumbel(0, 1); 0 disables the training noise."""
    noise_on_log_scores: bool = False
    """Sort log(a) + tau * g (the Gumbel-top-k trick) instead of a + tau * g."""
    gradient_scaling: bool = True
    """MMA's trick: forward x s, but the adapter's parameters get unshrunk gradients."""
    placement: str = "attention"
    """"attention": parallel to the block's attention (paper); "block": parallel to the whole block (MMA)."""

    def __post_init__(self) -> None:
        self.rank_ratios = tuple(float(e) for e in self.rank_ratios)
        if self.rank < 1:
            raise SettingsError(f"rank must be >= 1, got {self.rank}")
        if self.start_layer < 1:
            raise SettingsError(f"start_layer is 1-based and must be >= 1, got {self.start_layer}")
        if len(self.rank_ratios) != self.num_groups:
            raise SettingsError(
                f"rank_ratios has {len(self.rank_ratios)} values but num_groups is {self.num_groups}: "
                "give one ratio per group"
            )
        if any(not (0.0 < e <= 1.0) for e in self.rank_ratios):
            raise SettingsError(f"every rank ratio must lie in (0, 1], got {self.rank_ratios}")
        if min(self.kept_channels) < 1:
            raise SettingsError(f"rank_ratios {self.rank_ratios} keep no channel at rank {self.rank}")
        for name, value, allowed in (
            ("branches", self.branches, BRANCHES),
            ("placement", self.placement, PLACEMENTS),
            ("reg_reduction", self.reg_reduction, REDUCTIONS),
        ):
            if value not in allowed:
                raise SettingsError(f"{name} must be one of {allowed}, got {value!r}")
        if self.scale <= 0:
            raise SettingsError(f"scale must be > 0, got {self.scale}")
        if self.noise_temperature < 0 or self.relax_temperature <= 0:
            raise SettingsError("noise_temperature must be >= 0 and relax_temperature > 0")

    @property
    def kept_channels(self) -> tuple[int, ...]:
        """floor(e_i * r) per group (a tiny epsilon guards 0.29 * 100 = 28.999...)."""
        return tuple(int(math.floor(e * self.rank + 1e-9)) for e in self.rank_ratios)

    @property
    def adapts_image(self) -> bool:
        return self.branches in ("image", "both")

    @property
    def adapts_text(self) -> bool:
        return self.branches in ("text", "both")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["rank_ratios"] = list(self.rank_ratios)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DRAConfig:
        check_fields([f.name for f in dataclasses.fields(cls)], d, f"{cls.section}.")
        return cls(**d)


class _MethodConfig:
    """to_dict / from_dict (unknown keys name the nearest valid one) for the baselines' configs."""

    section = ""
    """The settings section of the fields (`mma`, `lora`, ...): the one place it is written."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        check_fields([f.name for f in dataclasses.fields(cls)], d, f"{cls.section}.")
        return cls(**d)


def _check_branches(branches: str) -> None:
    if branches not in BRANCHES:
        raise SettingsError(f"branches must be one of {BRANCHES}, got {branches!r}")


@dataclass
class MMAConfig(_MethodConfig):
    """Multi-Modal Adapter (ZjjConan/Multi-Modal-Adapter): adapters in blocks start..end of both towers."""

    section = "mma"
    dim: int = 32
    """ADAPTER_DIM: the bottleneck width, and the size of the shared dim x dim layer."""
    start_layer: int = 5
    """ADAPTER_START (1-based)."""
    end_layer: int = 0
    """ADAPTER_END (1-based, inclusive); 0 = the last block (12 on ViT-B/16, as published)."""
    scale: float = 0.001
    """ADAPTER_SCALE s: the branch adds s * up(relu(shared(relu(down(LN1 x)))))."""
    gradient_scaling: bool = True
    """MMA's gradient-scale layers (forward x s, the adapter's parameters get unshrunk gradients)."""

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise SettingsError(f"dim must be >= 1, got {self.dim}")
        if self.start_layer < 1:
            raise SettingsError(f"start_layer is 1-based and must be >= 1, got {self.start_layer}")
        if self.end_layer and self.end_layer < self.start_layer:
            raise SettingsError(f"end_layer ({self.end_layer}) must be >= start_layer ({self.start_layer}) or 0 (last)")
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise SettingsError(f"scale must be > 0, got {self.scale}")


@dataclass
class LoRAConfig(_MethodConfig):
    """CLIP-LoRA (MaxZanella/CLIP-LoRA): low-rank updates of q, k, v in every block of both towers."""

    section = "lora"
    rank: int = 2
    alpha: float = 1.0
    """The update is scaled by alpha / sqrt(rank), as CLIP-LoRA's loralib computes it."""
    dropout: float = 0.25
    """Dropout on the LoRA input (training only)."""
    branches: str = "both"
    """Which towers get LoRA: image, text or both."""
    start_layer: int = 1
    """First block with LoRA (1-based); 1 = all blocks (CLIP-LoRA's position 'all')."""

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise SettingsError(f"rank must be >= 1, got {self.rank}")
        if not (0 <= self.dropout < 1):
            raise SettingsError(f"dropout must be in [0, 1), got {self.dropout}")
        if not math.isfinite(self.alpha):
            raise SettingsError(f"alpha must be finite, got {self.alpha}")
        if self.start_layer < 1:
            raise SettingsError(f"start_layer is 1-based and must be >= 1, got {self.start_layer}")
        _check_branches(self.branches)

    @property
    def scaling(self) -> float:
        return self.alpha / math.sqrt(self.rank)


@dataclass
class CLIPAdapterConfig(_MethodConfig):
    """CLIP-Adapter (gaopengcuhk/CLIP-Adapter): f' = alpha * A(f) + (1 - alpha) * f on the image feature."""

    section = "clip_adapter"
    alpha: float = 0.2
    """The residual ratio (hard-coded 0.2 in the released code)."""
    reduction: int = 4
    """A = relu(W2 relu(W1 f)), W1: d -> d / reduction, no biases."""

    def __post_init__(self) -> None:
        if not (0 <= self.alpha <= 1):
            raise SettingsError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.reduction < 1:
            raise SettingsError(f"reduction must be >= 1, got {self.reduction}")


@dataclass
class TipAdapterConfig(_MethodConfig):
    """Tip-Adapter / Tip-Adapter-F (gaopengcuhk/Tip-Adapter): a cache of few-shot image features."""

    section = "tip_adapter"
    alpha: float = 1.0
    """init_alpha: weight of the cache logits."""
    beta: float = 1.0
    """init_beta: sharpness of exp(-beta (1 - f . key))."""
    augment_views: int = 10
    """Augmented views averaged per training image for the cache keys (augment_epoch)."""
    search: bool = True
    """Grid-search alpha and beta on the few-shot val set (as the official code does)."""
    search_scale_beta: float = 7.0
    search_scale_alpha: float = 3.0
    search_steps_beta: int = 200
    search_steps_alpha: int = 20
    search_set: str = "full"
    """What the search runs on: "full", the dataset's whole val split (main.py's val_loader), or "fewshot", the
    min(shots, 4)-per-class val draw of Dassl. Never the test set: a dataset whose val is its test (ImageNet)
    gets no search."""

    def __post_init__(self) -> None:
        if self.search_set not in ("full", "fewshot"):
            raise SettingsError(f"search_set must be 'full' or 'fewshot', got {self.search_set!r}")
        if self.augment_views < 1:
            raise SettingsError(f"augment_views must be >= 1, got {self.augment_views}")
        if min(self.search_steps_beta, self.search_steps_alpha) < 1:
            raise SettingsError("search_steps_beta and search_steps_alpha must be >= 1")
        if self.beta < 0 or not math.isfinite(self.alpha):
            raise SettingsError(f"beta must be >= 0 and alpha finite, got beta={self.beta}, alpha={self.alpha}")


@dataclass
class CoOpConfig(_MethodConfig):
    """CoOp's context: M vectors shared by all classes, before the class name (class token at the end)."""

    ctx_init: str = "a photo of a"
    """Words whose token embeddings initialise the context (M = their token count); "" = N(0, 0.02^2)."""
    n_ctx: int = 4
    """M when `ctx_init` is empty."""

    def __post_init__(self) -> None:
        if self.n_ctx < 1:
            raise SettingsError(f"n_ctx must be >= 1, got {self.n_ctx}")

    section = "coop"


@dataclass
class KgCoOpConfig(CoOpConfig):
    """CoOp plus the knowledge-guided term lambda * (1 - mean_c cos(t_c, t_c^clip))."""

    kg_weight: float = 8.0
    """lambda (KgCoOp's TRAINER.COOP.W, 8.0 for every dataset)."""

    section = "kgcoop"


@dataclass
class CoCoOpConfig(CoOpConfig):
    """CoOp plus a Meta-Net d -> d/reduction -> D whose output is added to every context vector, per image."""

    meta_reduction: int = 16
    """The Meta-Net's hidden width is the image feature width divided by this (512 / 16 = 32)."""

    section = "cocoop"


@dataclass
class MaPLeConfig(CoOpConfig):
    """Deep multi-modal prompts: n_ctx text tokens per layer for `depth` layers, each coupled to the
    image tower by its own Linear(text width -> image width)."""

    n_ctx: int = 2
    """Tokens per layer; the first n_ctx words of `ctx_init` start layer 0, the prompt reads all of them."""
    depth: int = 9
    """J: layers 0..J-1 carry prompts (layer 0 = the input tokens)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.depth < 1:
            raise SettingsError(f"depth must be >= 1, got {self.depth}")

    section = "maple"


@dataclass
class TCPConfig(KgCoOpConfig):
    """CoOp with random context + class-aware prompts from a Textual Knowledge Embedding (TKE) MLP,
    injected at one text block; trained with KgCoOp's term (lambda 8)."""

    ctx_init: str = ""
    inject_layer: int = 8
    """0-based text block at whose input the class-aware prompts replace tokens 1..n_ctx."""
    tke_reduction: int = 4
    """The TKE's hidden width is the text feature width divided by this (512 / 4 = 128)."""
    prompt: str = ""
    """The learned prompt's text, its first n_ctx tokens replaced by the context (tcp.py CUSTOM_TEMPLATES, e.g.
    "X X X X {}, a type of pet."); "" = n_ctx placeholders, then "{class}."."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prompt and "{}" not in self.prompt:
            raise SettingsError(f"tcp.prompt must contain '{{}}' for the class name, got {self.prompt!r}")

    section = "tcp"


@dataclass
class MetaPromptConfig(_MethodConfig):
    """MetaPrompt (Vill-Lab/2024-TIP-MetaPrompt, trainer Meta_B2N): deep uncoupled prompts in both towers,
    paired with a frozen zero-shot classifier and a frozen image feature, plus a class-split meta step."""

    n_ctx: int = 2
    """N_CTX: text prompt tokens per layer (they replace the placeholders of "X X {class}.")."""
    n_pro: int = 2
    """N_PRO: image prompt tokens per layer (appended after the patch tokens)."""
    layers: int = 12
    """LAYERS: layers 0..layers-1 of each tower carry their own prompts (layer 0 = the input tokens)."""
    meta_step: float = 0.2
    """META_STEP: theta <- theta - lr * meta_step * g_i after the class-split inner steps."""
    meta_splits: int = 2
    """N: the base classes are shuffled and cut into this many groups each step."""
    imagenet_ensemble: bool = False
    """The frozen classifier averages the 8 ImageNet templates (ImageNet) instead of the one template."""
    alias_reset: bool = True
    """Official behaviour (i): the reset to the snapshot aliases it, so only the first reset of a step
    restores the prompts (the published numbers came from it); False resets after every split."""
    frozen_prompt_momentum: bool = True
    """Official behaviour (ii), torch 1.10: the "frozen" image prompts keep a zero gradient and so still get
    SGD momentum and weight decay in the inner steps (published numbers); False leaves them untouched."""

    def __post_init__(self) -> None:
        if min(self.n_ctx, self.n_pro, self.layers) < 1:
            raise SettingsError("n_ctx, n_pro and layers must be >= 1")
        if self.meta_splits < 2:
            raise SettingsError(f"meta_splits must be >= 2, got {self.meta_splits}")
        if not (self.meta_step >= 0 and math.isfinite(self.meta_step)):
            raise SettingsError(f"meta_step must be >= 0, got {self.meta_step}")

    section = "metaprompt"


@dataclass
class LFAConfig(_MethodConfig):
    """LFA (saic-fi/LFA): a linear map on frozen image features, beta-Procrustes init + AdamW refinement."""

    beta: float = 0.9
    """--beta-procrustes: W0 = UV^T pulled towards the identity, W0 - beta (W0 - I)."""
    iterations: int = 100
    """--n-iters: full-batch AdamW steps (per dataset in configs/methods/lfa.yaml, the README's values)."""
    lr: float = 5.0e-4
    final_lr: float = 1.0e-7
    """--cosine-end-lr: the per-iteration cosine ends here."""
    weight_decay: float = 5.0e-4
    knn: int = 3
    """--knn: the re-ranking loss looks at the k nearest class prototypes."""
    rerank_scale: float = 4.0
    """--arerank-scale: margin (1 - t_j . t_y) / scale."""
    noise_std: float = 0.035
    """--gaussian-noise (applied to the batch with probability 1/2)."""
    dropout: float = 0.05
    """--dropout on the features (applied with probability 1/2)."""
    five_crop: bool = True
    """--five-crop: five 224 crops per training image, one picked at random per image each iteration."""
    imagenet_ensemble: bool = False
    """The class prototypes average the 8 ImageNet templates (ImageNet) instead of the one template."""

    def __post_init__(self) -> None:
        if not 0 <= self.beta <= 1:
            raise SettingsError(f"beta must be in [0, 1], got {self.beta}")
        if self.iterations < 0 or self.knn < 1 or self.rerank_scale <= 0:
            raise SettingsError("iterations must be >= 0, knn >= 1 and rerank_scale > 0")
        if not (self.lr > 0 and self.final_lr >= 0):
            raise SettingsError(f"lr must be > 0 and final_lr >= 0, got {self.lr}, {self.final_lr}")

    section = "lfa"


@dataclass
class ProDAConfig(_MethodConfig):
    """ProDA (Lu et al., CVPR 2022), our re-implementation: K prompts of M learned tokens with the class
    name at varied positions; a Gaussian over their class embeddings; mu_c at inference."""

    n_prompts: int = 32
    """K: the prompts (1/4 class name first, 1/4 in the middle, 1/2 at the end)."""
    n_ctx: int = 16
    """M: learned tokens per prompt (N(0, 0.02^2))."""
    prompt_batch: int = 8
    """Prompts sampled per training step (their embeddings estimate mu_c and Sigma)."""
    diversity_weight: float = 1.0
    """Weight of the mean |cos| between the prompts' class-free embeddings."""

    def __post_init__(self) -> None:
        if self.n_prompts < 2 or self.n_ctx < 1:
            raise SettingsError(f"n_prompts must be >= 2 and n_ctx >= 1, got {self.n_prompts}, {self.n_ctx}")
        if not 2 <= self.prompt_batch <= self.n_prompts:
            raise SettingsError(f"prompt_batch must be in [2, n_prompts={self.n_prompts}], got {self.prompt_batch}")
        if self.diversity_weight < 0:
            raise SettingsError(f"diversity_weight must be >= 0, got {self.diversity_weight}")

    section = "proda"
