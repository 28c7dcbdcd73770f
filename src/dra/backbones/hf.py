"""Hugging Face transformers `CLIPModel` and `SiglipModel` as a dra backbone (`--model hf:<repo or folder>`).

    load_backbone("hf:openai/clip-vit-base-patch16")     # from the local HF cache (downloaded when online)
    load_backbone("hf:/models/my-clip")                  # a local folder (config.json + weights [+ tokenizer])
    load_backbone("hf:/models/my-clip", pretrained=None) # the architecture with random weights (seed 0)

The blocks methods wrap are the encoder layers (`CLIPEncoderLayer` / `SiglipEncoderLayer`: `layer_norm1`,
`self_attn`, `layer_norm2`, `mlp`; see `dra.backbones.blocks`). The text tower runs whole at each call
(no frozen-prefix cache as for open_clip): slower training of text adapters, the same features.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from dra.backbones.base import BackboneError, CLIPBackbone, Preprocess, WeightsUnavailableError
from dra.backbones.loading import _hub_reachable
from dra.data.transforms import CLIP_MEAN, CLIP_STD
from dra.errors import refusal

HF_PREFIX = "hf:"
SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)


def _transformers():
    try:
        import transformers
    except ImportError:
        raise BackboneError("Hugging Face models need the transformers package: pip install 'dra[hf]'") from None
    return transformers


def _offline_error(name: str, e: Exception) -> BackboneError:
    first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
    return WeightsUnavailableError(
        f"Hugging Face model '{name}' is not in the local cache and the model hub cannot be reached (offline) "
        f"({first.strip()[:160]}). Download it on a connected machine (`huggingface-cli download {name}`, it lands "
        f"in ~/.cache/huggingface) or pass a local folder: --model hf:/path/to/{Path(name).name}"
    )


class HFCLIPBackbone(CLIPBackbone):
    """A transformers CLIPModel / SiglipModel behind the `CLIPBackbone` interface the methods use."""

    def __init__(self, model: nn.Module, info: dict, tokenizer=None) -> None:
        super().__init__()
        kind = getattr(model.config, "model_type", "")
        if kind not in ("clip", "siglip"):
            raise BackboneError(
                f"{info.get('model')}: Hugging Face model type '{kind}' is not supported (CLIPModel or SiglipModel)"
            )
        self.clip = model
        self.info = dict(info)
        self.kind = kind
        vcfg, tcfg = model.config.vision_config, model.config.text_config
        self.context_length = int(tcfg.max_position_embeddings)
        self.tokenizer = tokenizer if tokenizer is not None else self._fallback_tokenizer()
        mean, std = (CLIP_MEAN, CLIP_STD) if kind == "clip" else (SIGLIP_MEAN, SIGLIP_STD)
        self.preprocess = Preprocess(int(vcfg.image_size), *info.get("norm", (mean, std)))

    def _fallback_tokenizer(self):
        """Without tokenizer files: open_clip's CLIP BPE (the same vocabulary as OpenAI's CLIP, 49408 tokens)."""
        tcfg = self.clip.config.text_config
        if self.kind != "clip" or int(tcfg.vocab_size) != 49408:
            raise BackboneError(
                f"{self.info.get('model')}: no tokenizer files found next to the model "
                "(tokenizer.json / vocab files); save the tokenizer with the model"
            )
        from open_clip.tokenizer import SimpleTokenizer

        return SimpleTokenizer(context_length=self.context_length)

    # -- blocks ---------------------------------------------------------------------------------------
    @property
    def image_blocks(self) -> nn.ModuleList:
        return self.clip.vision_model.encoder.layers

    @property
    def text_blocks(self) -> nn.ModuleList:
        return self.clip.text_model.encoder.layers

    @property
    def image_width(self) -> int:
        return int(self.clip.config.vision_config.hidden_size)

    @property
    def text_width(self) -> int:
        return int(self.clip.config.text_config.hidden_size)

    @property
    def text_device(self) -> torch.device:
        return next(self.clip.text_model.parameters()).device

    # -- features -------------------------------------------------------------------------------------
    def encode_image(self, images: torch.Tensor, pooled_only: bool = False) -> torch.Tensor:
        x = self.clip.vision_model(pixel_values=images).pooler_output
        proj = getattr(self.clip, "visual_projection", None)
        return F.normalize(proj(x) if proj is not None else x, dim=-1)

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        tok = self.tokenizer
        if hasattr(tok, "pad_token_id"):  # a transformers tokenizer
            ids = tok(
                prompts, padding="max_length", max_length=self.context_length, truncation=True, return_tensors="pt"
            )["input_ids"]
        else:
            ids = tok(prompts)
        return ids.to(self.text_device)

    def text_prefix(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """No cached prefix for HF towers: the tokens themselves (encode_text_from runs the whole tower)."""
        return tokens

    def encode_text_from(
        self, hidden: torch.Tensor, tokens: torch.Tensor, start: int, frozen: bool = False, pooled_only: bool = False
    ) -> torch.Tensor:
        """The whole HF text tower (its layers run as they are: `frozen` is not supported and refused)."""
        if frozen:
            raise NotImplementedError("frozen reference text features are not available for Hugging Face backbones")
        x = self.clip.text_model(input_ids=tokens).pooler_output
        proj = getattr(self.clip, "text_projection", None)
        return F.normalize(proj(x) if proj is not None else x, dim=-1)


def _norm_from_folder(folder: Path):
    path = folder / "preprocessor_config.json"
    if path.is_file():
        try:
            cfg = json.loads(path.read_text())
            return tuple(cfg["image_mean"]), tuple(cfg["image_std"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return None


def load_hf_backbone(model_name: str, pretrained: str | None = "hf") -> HFCLIPBackbone:
    """`hf:<repo id or folder>`; `pretrained` None or "" builds the architecture with random weights."""
    transformers = _transformers()
    name = model_name[len(HF_PREFIX) :] if model_name.startswith(HF_PREFIX) else model_name
    folder = Path(os.path.expanduser(name))
    local = folder.is_dir()
    if not local and (name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1)):
        raise BackboneError(f"Hugging Face model folder {folder} does not exist; check --model hf:PATH")
    only_local = local or not _hub_reachable()
    source = str(folder) if local else name
    try:
        config = transformers.AutoConfig.from_pretrained(source, local_files_only=only_local)
    except OSError as e:
        raise (
            _offline_error(name, e)
            if only_local and not local
            else BackboneError(f"cannot read the Hugging Face config of {source} ({str(e).splitlines()[0][:200]})")
        ) from None
    classes = {"clip": transformers.CLIPModel, "siglip": transformers.SiglipModel}
    cls = classes.get(getattr(config, "model_type", ""))
    if cls is None:
        raise BackboneError(
            f"{model_name}: Hugging Face model type '{config.model_type}' is not supported "
            "(CLIPModel or SiglipModel: model_type clip or siglip)"
        )
    random_weights = pretrained is None or str(pretrained) == ""
    if random_weights:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = cls(config)
    else:
        try:
            model = cls.from_pretrained(source, local_files_only=only_local)
        except OSError as e:
            raise (
                _offline_error(name, e)
                if only_local and not local
                else BackboneError(f"cannot load the weights of {source} ({refusal(e)})")
            ) from None
        except Exception as e:  # noqa: BLE001 - a corrupt safetensors file, a pickle that holds code, ...
            raise BackboneError(
                f"cannot load the weights of {source} ({refusal(e)}); re-download the folder, or give its "
                "weights as model.safetensors"
            ) from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    tokenizer = None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=only_local)
    except Exception:  # noqa: BLE001 - no tokenizer files: the CLIP BPE fallback (or a clear error) follows
        tokenizer = None
    info = {"model": f"{HF_PREFIX}{name}", "pretrained": "random" if random_weights else "hf", "quick_gelu": False}
    norm = _norm_from_folder(folder) if local else None
    if norm:
        info["norm"] = norm
    backbone = HFCLIPBackbone(model, info, tokenizer)
    backbone.info.pop("norm", None)
    return backbone
