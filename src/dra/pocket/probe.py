"""`dra pocket probe`: what a pocket CLIP sees, attribute by attribute (a SIMULATION).

The tower (ViT-Pocket-P6 or ViT-Pocket, `dra.pocket.MODELS`) is `--model`, else the `model` recorded in
the `pocket.json` beside the weights, else the shipped weights' tower (`model_of`).

For each attribute of the world (shape, colour, pattern, size, count, background) on unshifted scenes
`world.sample(seed, i)` (the pretraining distribution; train draw i < n_train, test draw the next n_test
indices, so the two are disjoint):

- zero-shot: the image embedding against one caption per value, in the world's own grammar (its first
  frame "a photo of a {}." around the value's noun phrase: "circle", "red object", "three objects",
  "snow field"; the pocket datasets' class names are the same phrases);
- linear probe: multinomial logistic regression on the frozen, standardised image embeddings, fit on
  the train draw (full batch, float64, L-BFGS for a fixed number of iterations, L2 on the weights: a
  deterministic fit), scored on the test draw;
- the same probe on the random-init tower (`create_clip(model, None)`: the same architecture with
  seeded random weights), the floor pretraining must beat (so this column changes with the tower);
- chance: 1 / number of values, unless the test draw is unbalanced (its most common value more than
  four binomial standard errors above 1/k, as for size: four to six objects are always small), then
  the majority-class rate of the test draw (`chance_kind` says which).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dra.data.generated import world
from dra.errors import SettingsError
from dra.pocket.attributes import ATTRIBUTES, phrase, values

__all__ = ["ATTRIBUTES", "phrase", "values", "probe", "table_of"]

PROMPT = world.FRAMES[0]  # "a photo of a {}.": the grammar's first frame, the pocket benchmark's template


def prompts(attribute: str) -> list[str]:
    """One caption per value of `attribute`, in value order."""
    return [PROMPT.format(phrase(attribute, v)) for v in values(attribute)]


def labels_of(scenes: list[world.Scene], attribute: str) -> np.ndarray:
    """The index of each scene's value of `attribute` (int64)."""
    index = {v: i for i, v in enumerate(values(attribute))}
    return np.array([index[getattr(s, attribute)] for s in scenes], dtype=np.int64)


def chance(labels: np.ndarray, n_values: int) -> tuple[float, str]:
    """(chance accuracy in percent, "uniform" or "majority") of a test draw: 1/k, or the majority-class
    rate when the draw's most common value lies more than four binomial standard errors above 1/k."""
    n = len(labels)
    uniform = 1.0 / n_values
    top = max(Counter(labels.tolist()).values()) if n else 0
    if n and top / n > uniform + 4 * math.sqrt(uniform * (1 - uniform) / n):
        return 100.0 * top / n, "majority"
    return 100.0 / n_values, "uniform"


def percent_correct(predicted: np.ndarray, labels: np.ndarray) -> float:
    """100 * correct / total (a multiple of 100/total, without the rounding of a mean)."""
    return 100.0 * int((np.asarray(predicted) == np.asarray(labels)).sum()) / len(labels)


@dataclass(frozen=True)
class ProbeSettings:
    seed: int = 1000  # the world's seed of the probe's scenes (pretraining draws seed 0's groups)
    train_scenes: int = 600
    test_scenes: int = 400
    l2: float = 1e-3  # L2 penalty on the probe's weights (mean loss + l2 * |W|^2)
    iterations: int = 100  # L-BFGS iterations (fixed: the fit is deterministic)

    def __post_init__(self) -> None:
        """Every value checked before anything is loaded: one ValueError naming the option and the rule."""
        rules = [
            (self.train_scenes >= 1, "--train-scenes", "an integer >= 1", self.train_scenes),
            (self.test_scenes >= 1, "--test-scenes", "an integer >= 1", self.test_scenes),
            (math.isfinite(self.l2) and self.l2 >= 0, "l2", "a finite number >= 0", self.l2),
            (self.iterations >= 1, "iterations", "an integer >= 1", self.iterations),
        ]
        for ok, name, rule, value in rules:
            if not ok:
                raise SettingsError(f"{name} must be {rule}, got {value!r}")


def draw(seed: int, start: int, n: int) -> tuple[torch.Tensor, list[world.Scene]]:
    """Scenes `start .. start+n-1` of the world `seed`, unshifted: (normalised image batch, scenes)."""
    from dra.data.transforms import CLIP_MEAN, CLIP_STD

    images, scenes = [], []
    for i in range(start, start + n):
        image, _, scene = world.sample(seed, i)
        images.append(np.asarray(image, np.float32) / 255.0)
        scenes.append(scene)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    mean, std = torch.tensor(CLIP_MEAN)[:, None, None], torch.tensor(CLIP_STD)[:, None, None]
    return (x - mean) / std, scenes


@torch.no_grad()
def image_features(model, images: torch.Tensor, batch_size: int = 200) -> torch.Tensor:
    """L2-normalised image embeddings, in batches."""
    return torch.cat(
        [model.encode_image(images[i : i + batch_size], normalize=True) for i in range(0, len(images), batch_size)]
    )


@torch.no_grad()
def zero_shot(model, tokenizer, features: torch.Tensor, labels: np.ndarray, attribute: str) -> float:
    """Accuracy (percent) of the nearest caption among `prompts(attribute)` for normalised image features."""
    text = model.encode_text(tokenizer(prompts(attribute)), normalize=True)
    predicted = (features @ text.T).argmax(-1).numpy()
    return percent_correct(predicted, labels)


def linear_probe(
    train_x: torch.Tensor,
    train_y: np.ndarray,
    test_x: torch.Tensor,
    test_y: np.ndarray,
    n_classes: int,
    l2: float = 1e-3,
    iterations: int = 100,
) -> float:
    """Test accuracy (percent) of a multinomial logistic regression fit on (train_x, train_y).

    Features are standardised with the train draw's mean and std (a constant feature stays 0); the fit
    is full batch in float64 with L-BFGS (strong Wolfe line search, `iterations` iterations) on the mean
    cross-entropy plus `l2` * |W|^2 (the bias is not penalised). Deterministic on a fixed thread count."""
    x = train_x.detach().to(torch.float64)
    mu, sd = x.mean(0), x.std(0, unbiased=False)
    sd = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
    x = (x - mu) / sd
    y = torch.as_tensor(train_y, dtype=torch.long)
    weight = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=iterations, tolerance_grad=1e-10, tolerance_change=1e-12,
        history_size=20, line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, y) + l2 * (weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        xt = (test_x.detach().to(torch.float64) - mu) / sd
        predicted = (xt @ weight + bias).argmax(-1).numpy()
    return percent_correct(predicted, test_y)


def model_of(path: Path, model: str | None = None) -> str:
    """The pocket tower a weights file belongs to: `model` when given, else the `model` that
    `dra pocket pretrain` recorded in the JSON beside the file (`pocket.safetensors` -> `pocket.json`),
    else the shipped weights' tower (`dra.pocket.MODEL`). A name outside `dra.pocket.MODELS` is a SettingsError."""
    import json

    from dra.pocket import MODEL, MODELS

    if model is None:
        meta = path.with_suffix(".json")
        try:
            recorded = json.loads(meta.read_text(encoding="utf-8")).get("model") if meta.is_file() else None
        except (OSError, ValueError, AttributeError) as e:
            raise SettingsError(
                f"{meta} (beside the weights) cannot be read as pocket.json ({type(e).__name__}); pass --model"
            ) from None
        model = recorded if recorded is not None else MODEL
    if model not in MODELS:
        raise SettingsError(f"--model must be one of {', '.join(MODELS)}, got {model!r} (for {path})")
    return model


def load_towers(weights: str | Path | None, model: str | None = None):
    """(trained CLIP, random-init CLIP, tokenizer, weights path, tower name, checkpoint step or None);
    `weights` None: the packaged pocket CLIP; a file: its tower is `model_of(path, model)`; a folder: the
    latest checkpoint of a `dra pocket pretrain` run there (a run in progress can be probed)."""
    import open_clip

    from dra.backbones.loading import BackboneError, create_clip, open_clip_quietly
    from dra.backbones.weights import PACKAGED, packaged_file
    from dra.pocket import MODEL

    step = None
    if weights is None:
        path = packaged_file(PACKAGED["pocket"], MODEL)
    else:
        path = Path(weights).expanduser()
        if not path.exists():
            raise BackboneError(
                f"weights file {path} does not exist; pass --weights a pocket CLIP checkpoint (.safetensors) or "
                "a pretraining run folder, or leave it out for the packaged pocket CLIP"
            )
    if path.is_dir():
        from dra.pocket.pretrain import read_run

        name, step, state = read_run(path)
        if model is not None and model != name:
            raise SettingsError(f"--model {model} does not match the run in {path}, which trains {name}")
        trained, _ = create_clip(name, None)
        trained.load_state_dict(state)
    else:
        name = model_of(path, model)
        trained, _ = create_clip(name, str(path))
    random_init, _ = create_clip(name, None)  # the same architecture, seeded random weights
    with open_clip_quietly():
        tokenizer = open_clip.get_tokenizer(name)
    return trained, random_init, tokenizer, path, name, step


def probe(
    weights: str | Path | None = None, settings: ProbeSettings = ProbeSettings(), model: str | None = None
) -> dict:
    """The probe's JSON: the settings and one object per attribute (zero-shot, linear probe, random-init
    linear probe, chance, all in percent). `model`: the tower (None: `model_of` the weights file)."""
    s = settings
    trained, random_init, tokenizer, path, name, step = load_towers(weights, model)
    train_images, train_scenes = draw(s.seed, 0, s.train_scenes)
    test_images, test_scenes = draw(s.seed, s.train_scenes, s.test_scenes)
    feats = {
        name: (image_features(model, train_images), image_features(model, test_images))
        for name, model in (("trained", trained), ("random", random_init))
    }
    rows = []
    for attribute in ATTRIBUTES:
        k = len(values(attribute))
        y_train, y_test = labels_of(train_scenes, attribute), labels_of(test_scenes, attribute)
        level, kind = chance(y_test, k)
        probes = {
            name: linear_probe(tr, y_train, te, y_test, k, s.l2, s.iterations) for name, (tr, te) in feats.items()
        }
        rows.append(
            {
                "attribute": attribute,
                "values": k,
                "zero_shot": zero_shot(trained, tokenizer, feats["trained"][1], y_test, attribute),
                "linear_probe": probes["trained"],
                "random_init_linear_probe": probes["random"],
                "chance": level,
                "chance_kind": kind,
            }
        )
    return {
        "simulation": True,
        "what": "the pocket world's CLIP probed per attribute on unshifted generated scenes (a simulation)",
        "weights": str(path),
        "model": name,
        "step": step,  # a run folder's checkpoint step; None for a weights file
        "generator": world.GENERATOR_VERSION,
        "prompt": PROMPT,
        "settings": {
            **asdict(s),
            "train_indices": [0, s.train_scenes],
            "test_indices": [s.train_scenes, s.train_scenes + s.test_scenes],
            "features": "normalised image embeddings, standardised on the train draw",
            "random_init": f"create_clip({name}, None): the same architecture, seed 0",
        },
        "attributes": rows,
    }


def record_probe(run: Path, ship: bool = False, settings: ProbeSettings = ProbeSettings()) -> dict:
    """Probe a finished pretraining run's weights (`run`/pocket.safetensors) and add the result to its
    pocket.json as `"probe"` (and to the packaged pocket.json when the run shipped them); returns it."""
    import json

    from dra.io import atomic_write_text
    from dra.pocket import WEIGHTS
    from dra.pocket.pretrain import META_NAME, WEIGHTS_NAME

    result = probe(run / WEIGHTS_NAME, settings)
    summary = {
        "settings": result["settings"],
        "attributes": {r["attribute"]: {k: v for k, v in r.items() if k != "attribute"} for r in result["attributes"]},
    }
    for meta_path in [run / META_NAME] + ([WEIGHTS.with_name(META_NAME)] if ship else []):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        atomic_write_text(meta_path, json.dumps({**meta, "probe": summary}, indent=2) + "\n")
    return summary


def table_of(result: dict):
    """The probe as a `Table` (percent)."""
    from dra.report import Table

    s = result["settings"]
    return Table(
        title=f"Pocket CLIP probe (SIMULATION) — {Path(result['weights']).name}"
        + (f" (checkpoint at step {result['step']})" if result.get("step") is not None else ""),
        columns=["Attribute", "Values", "Zero-shot", "Linear probe", "Random-init probe", "Chance"],
        rows=[
            [
                r["attribute"],
                r["values"],
                r["zero_shot"],
                r["linear_probe"],
                r["random_init_linear_probe"],
                r["chance"],
            ]
            for r in result["attributes"]
        ],
        notes=[
            f"Unshifted scenes of world seed {s['seed']}: probes fit on {s['train_scenes']}, all columns scored "
            f"on the next {s['test_scenes']}; zero-shot prompt '{result['prompt']}' around each value's phrase.",
            "Chance: 1/values, or the test draw's majority-class rate where the draw is unbalanced ("
            + (", ".join(r["attribute"] for r in result["attributes"] if r["chance_kind"] == "majority") or "none")
            + ").",
        ],
    )
