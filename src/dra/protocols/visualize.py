"""Paper Figure 4: the rank DRA gives each image patch and each prompt token, at one adapted block.

Ranks come from a training-mode forward (where DRA masks) without Gumbel noise, so the picture shows
the order of the scores themselves; `order_agreement` then reports how far the noisy orders of
training (the configured noise) are from that noiseless order (Spearman, 1 = same order).
"""
from __future__ import annotations

from pathlib import Path

import torch

from dra.data import load_image
from dra.report import order_agreement, plot_image_ranks, plot_text_ranks


def _noise(model, tau: float) -> float:
    old = model.config.noise_temperature
    model.config.noise_temperature = tau  # every adapter shares this config object
    return old


@torch.no_grad()
def token_ranks(model, image_path: str, classname: str | None, out_dir: str | Path, block: int | None = None) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _, test_tf = model.backbone.transforms()
    image = test_tf(load_image(image_path)).unsqueeze(0)
    device = model.backbone.clip.positional_embedding.device
    if classname is not None:
        model.set_classnames([classname])
    was_training = model.training
    model.train()
    result: dict = {"image": str(image_path), "classname": model.classnames[0]}
    try:
        tau = _noise(model, 0.0)
        model(image.to(device))
        clean = {t: {k: (b.adapter.last_ranks[:1].cpu(), b.adapter.last_token_scores[:1].cpu())
                     for k, b in model.branches(t).items()} for t in ("image", "text")}
        _noise(model, tau)
        model(image.to(device))
        noisy = {t: {k: b.adapter.last_noisy_token_scores[:1].cpu() for k, b in model.branches(t).items()}
                 for t in ("image", "text")}
    finally:
        _noise(model, tau)
        model.train(was_training)
    mean, std = model.backbone.preprocess.mean, model.backbone.preprocess.std
    for tower in ("image", "text"):
        blocks = clean[tower]
        if not blocks:
            continue
        k = block if block is not None else max(blocks)
        ranks, scores = blocks[k]
        result[f"{tower}_block"] = k
        result[f"{tower}_order_agreement"] = {b: order_agreement(blocks[b][1], noisy[tower][b]) for b in blocks}
        path = out / f"{tower}_ranks_block{k}.png"
        if tower == "image":
            plot_image_ranks(image[0], ranks[0], path, mean=mean, std=std)
        else:
            tokens = model.backbone.tokenize(model.prompts[:1])[0].tolist()
            end = tokens.index(max(tokens)) + 1  # the EOT token has the largest id
            words = [model.backbone.tokenizer.decoder[t].replace("</w>", "") for t in tokens[:end]]
            plot_text_ranks(words, ranks[0], scores[0], path, title=model.prompts[0])
        result[f"{tower}_plot"] = str(path)
    return result
