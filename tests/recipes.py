"""The published recipes, transcribed from the official configs and scripts (the file each comes from), that
`dra settings` (dra.recipe.run_settings) must reproduce; tests/test_recipes.py holds them, and
docs/baselines.md's recipe table is generated from them (`python tests/recipes.py`).

Keys are dotted paths into `run_settings(...)`; a recipe holds for every dataset listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dra.data.registry import BASE_TO_NEW_DATASETS

B2N, XD, DG = "base2new", "cross_dataset", "domain_gen"
ELEVEN = BASE_TO_NEW_DATASETS  # the 11 datasets, in the papers' order (one list: the registry's)
DASSL_WARMUP = {"train.warmup_epochs": 1, "train.warmup_lr": 1e-5, "train.schedule": "epoch"}


@dataclass
class Recipe:
    method: str
    protocols: tuple[str, ...]
    datasets: tuple[str, ...]
    values: dict
    source: str
    extra: dict = field(default_factory=dict)


def sgd(lr, batch, epochs, warmup=True):
    return {
        "train.optimizer": "sgd",
        "train.lr": lr,
        "train.batch_size": batch,
        "train.epochs": epochs,
        "train.momentum": 0.9,
        "train.weight_decay": 5e-4,
        **(DASSL_WARMUP if warmup else {"train.warmup_epochs": 0, "train.schedule": "epoch"}),
    }


KGCOOP_TEMPLATES = {
    "oxford_pets": "a photo of a {}, a type of pet.",
    "oxford_flowers": "a photo of a {}, a type of flower.",
    "fgvc_aircraft": "a photo of a {}, a type of aircraft.",
    "dtd": "a photo of a {}, a type of texture.",
    "eurosat": "a centered satellite photo of {}.",
    "food101": "a photo of {}, a type of food.",
    "ucf101": "a photo of a person doing {}.",
    "stanford_cars": "a photo of a {}.",
    "imagenet": "a photo of a {}.",
}
TCP_TEMPLATES = {
    **KGCOOP_TEMPLATES,
    "fgvc_aircraft": "a photo of an aircraft {}.",
    "food101": "a photo of a {}, a type of food.",
}
TCP_PROMPTS = {
    "oxford_pets": "X X X X {}, a type of pet.",
    "oxford_flowers": "X X X X {}, a type of flower.",
    "fgvc_aircraft": "X X X X {}, a type of aircraft.",
    "dtd": "X X X X {} texture.",
    "eurosat": "X X X X {}.",
    "stanford_cars": "X X X X {}, a type of car",
    "food101": "X X X X {}, a type of food.",
    "ucf101": "a photo of a person doing {}.",
    "imagenet": "a photo of a {}.",
}
LFA_ITERS = {"caltech101": 40, "dtd": 100, "eurosat": 50, "food101": 50, "fgvc_aircraft": 100, "oxford_flowers": 50}
LFA_ITERS |= {"oxford_pets": 10, "stanford_cars": 50, "sun397": 50, "ucf101": 100, "imagenet": 100}
TIP = {  # dataset: (init alpha, search_scale_beta, search_scale_alpha) of configs/<dataset>.yaml
    "imagenet": (1.17, 7, 3),
    "caltech101": (3, 12, 5),
    "dtd": (2, 13, 13),
    "eurosat": (2, 12, 10),
    "fgvc_aircraft": (5, 30, 30),
    "food101": (1.17, 10, 10),
    "oxford_flowers": (10, 50, 50),
    "oxford_pets": (1.17, 7, 3),
    "stanford_cars": (3, 20, 10),
    "sun397": (1.17, 12, 10),
    "ucf101": (3, 7, 3),
}


def _per_dataset(method, protocols, table, key, source, base=None):
    return [Recipe(method, protocols, (d,), {**(base or {}), key: v}, source) for d, v in table.items()]


RECIPES: list[Recipe] = [
    Recipe(
        "zeroshot", (B2N, XD, DG), ("imagenet", "eurosat"), {"template": "a photo of a {}."}, "CLIP / CoOp zsclip.py"
    ),
    # DRA (the paper, section 4.1.2) and its plain-adapter baseline (Table 4)
    Recipe(
        "dra",
        (B2N,),
        ("eurosat", "dtd"),
        {**sgd(0.0015, 16, 5, False), "dra.start_layer": 5, "dra.rank": 32},
        "DRA paper 4.1.2",
    ),
    Recipe("dra", (B2N,), ("imagenet",), {"train.batch_size": 128, "train.epochs": 5}, "DRA paper 4.1.2"),
    Recipe("dra", (XD, DG), ("imagenet",), {**sgd(0.0015, 128, 1, False), "dra.start_layer": 7}, "DRA paper 4.1.2"),
    Recipe("adapter", (B2N,), ("eurosat",), {**sgd(0.0015, 16, 5, False), "dra.start_layer": 5}, "DRA paper Table 4"),
    # CoOp: configs/trainers/CoOp/vit_b16_ctxv1.yaml; ImageNet vit_b16_ep50_ctxv1.yaml (also its cross-dataset source)
    Recipe(
        "coop",
        (B2N,),
        ("eurosat", "dtd", "ucf101"),
        {**sgd(0.002, 32, 200), "coop.ctx_init": "a photo of a"},
        "KaiyangZhou/CoOp configs/trainers/CoOp/vit_b16_ctxv1.yaml",
    ),
    Recipe(
        "coop",
        (B2N, XD, DG),
        ("imagenet",),
        sgd(0.002, 32, 50),
        "KaiyangZhou/CoOp configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml",
    ),
    # CoCoOp: vit_b16_c4_ep10_batch1_ctxv1.yaml for base-to-new and the xd/dg scripts alike
    Recipe(
        "cocoop",
        (B2N, XD, DG),
        ("imagenet", "eurosat"),
        {**sgd(0.002, 1, 10), "cocoop.meta_reduction": 16},
        "KaiyangZhou/CoOp configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml",
    ),
    # KgCoOp
    Recipe(
        "kgcoop",
        (B2N,),
        ("imagenet", "eurosat"),
        {**sgd(0.002, 128, 100), "kgcoop.kg_weight": 8.0},
        "htyao89/KgCoOp configs/trainers/KgCoOp/vit_b16_ep100_ctxv1.yaml, scripts/base2new_train.sh",
    ),
    *_per_dataset("kgcoop", (B2N,), KGCOOP_TEMPLATES, "template", "htyao89/KgCoOp trainers/kgcoop.py CUSTOM_TEMPLATES"),
    # TCP
    Recipe(
        "tcp",
        (B2N,),
        ("eurosat", "dtd"),
        {
            "train.optimizer": "adam",
            "train.lr": 0.002,
            "train.adam_eps": 1e-3,
            "train.batch_size": 32,
            "train.epochs": 50,
            **DASSL_WARMUP,
            "tcp.inject_layer": 8,
            "tcp.kg_weight": 8.0,
            "tcp.n_ctx": 4,
        },
        "htyao89/Textual-based_Class-aware_prompt_tuning configs/trainers/TCP/vit_b16_ep100_ctxv1.yaml, README",
    ),
    Recipe("tcp", (B2N,), ("imagenet", "sun397"), {"train.epochs": 25}, "TCP scripts/base2new_test.sh LOADEP=25"),
    *_per_dataset("tcp", (B2N,), TCP_TEMPLATES, "template", "TCP trainers/tcp.py CUSTOM_TEMPLATES_ori"),
    *_per_dataset("tcp", (B2N,), TCP_PROMPTS, "tcp.prompt", "TCP trainers/tcp.py CUSTOM_TEMPLATES"),
    # MaPLe
    Recipe(
        "maple",
        (B2N,),
        ("imagenet", "eurosat"),
        {**sgd(0.0035, 4, 5), "maple.depth": 9, "maple.n_ctx": 2},
        "muzairkhattak/multimodal-prompt-learning configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml",
    ),
    Recipe(
        "maple",
        (XD, DG),
        ("imagenet",),
        {**sgd(0.0026, 4, 2), "maple.depth": 3, "maple.n_ctx": 2},
        "MaPLe configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets.yaml",
    ),
    # MMA
    Recipe(
        "mma",
        (B2N,),
        ("eurosat", "dtd"),
        {**sgd(0.0015, 16, 5, False), "mma.dim": 32, "mma.start_layer": 5, "mma.scale": 0.001},
        "ZjjConan/Multi-Modal-Adapter configs/trainers/MultiModalAdapter/vit_b16_ep5.yaml",
    ),
    Recipe(
        "mma",
        (B2N, XD, DG),
        ("imagenet",),
        sgd(0.0015, 128, 5, False),
        "MMA configs/trainers/MultiModalAdapter/vit_b16_ep5_imnet.yaml (xd_train.sh's only ImageNet config)",
    ),
    # MetaPrompt
    Recipe(
        "metaprompt",
        (B2N,),
        ELEVEN,
        {
            **sgd(0.0015, 16, 8),
            "metaprompt.n_ctx": 2,
            "metaprompt.n_pro": 2,
            "metaprompt.layers": 12,
            "metaprompt.meta_step": 0.2,
            "metaprompt.alias_reset": True,
            "metaprompt.frozen_prompt_momentum": True,
        },
        "Vill-Lab/2024-TIP-MetaPrompt configs/trainers/Meta_B2N/vit_b16.yaml, trainers/meta.py",
    ),
    Recipe("metaprompt", (B2N,), ("imagenet",), {"metaprompt.imagenet_ensemble": True}, "MetaPrompt trainers/meta.py"),
    Recipe("metaprompt", (B2N,), ("dtd",), {"template": "{} texture"}, "MetaPrompt trainers/meta.py"),
    # LFA
    Recipe(
        "lfa",
        (B2N,),
        ("eurosat",),
        {
            "lfa.beta": 0.9,
            "lfa.lr": 5e-4,
            "lfa.weight_decay": 5e-4,
            "lfa.final_lr": 1e-7,
            "lfa.knn": 3,
            "lfa.rerank_scale": 4.0,
            "lfa.noise_std": 0.035,
            "lfa.dropout": 0.05,
            "lfa.five_crop": True,
        },
        "saic-fi/LFA feature_alignment.py argparse defaults, README base-to-new command",
    ),
    *_per_dataset("lfa", (B2N,), LFA_ITERS, "lfa.iterations", "saic-fi/LFA README (base-to-new n-iters)"),
    Recipe("lfa", (B2N,), ("imagenet",), {"lfa.imagenet_ensemble": True}, "saic-fi/LFA save_features.py"),
    Recipe("lfa", (B2N,), ("dtd",), {"template": "{} texture."}, "saic-fi/LFA save_features.py"),
    # CLIP-LoRA
    Recipe(
        "clip_lora",
        (B2N,),
        ("imagenet", "eurosat"),
        {
            "train.optimizer": "adamw",
            "train.lr": 2e-4,
            "train.weight_decay": 1e-2,
            "train.batch_size": 32,
            "train.iterations": 8000,
            "train.schedule": "iteration",
            "train.final_lr": 1e-6,
            "train.drop_last": False,
            "train.warmup_epochs": 0,
            "lora.rank": 2,
            "lora.alpha": 1.0,
            "lora.dropout": 0.25,
        },
        "MaxZanella/CLIP-LoRA run_utils.py, lora.py run_lora",
    ),
    # CLIP-Adapter (README: CoOp's commands)
    Recipe(
        "clip_adapter",
        (B2N,),
        ("eurosat",),
        {**sgd(0.002, 32, 200), "clip_adapter.alpha": 0.2, "clip_adapter.reduction": 4},
        "gaopengcuhk/CLIP-Adapter clip_adapter.py + CoOp's recipe (README)",
    ),
    # Tip-Adapter
    *[
        Recipe(
            m,
            (B2N,),
            (d,),
            {
                "tip_adapter.alpha": a,
                "tip_adapter.search_scale_beta": b,
                "tip_adapter.search_scale_alpha": s,
                "tip_adapter.augment_views": 10,
                "tip_adapter.search_set": "full",
            },
            f"gaopengcuhk/Tip-Adapter configs/{d}.yaml, main.py",
        )
        for m in ("tip_adapter", "tip_adapter_f")
        for d, (a, b, s) in TIP.items()
    ],
    Recipe(
        "tip_adapter_f",
        (B2N,),
        ("imagenet", "dtd"),
        {
            "train.optimizer": "adamw",
            "train.lr": 1e-3,
            "train.adam_eps": 1e-4,
            "train.batch_size": 256,
            "train.epochs": 20,
            "train.crop_scale_min": 0.5,
            "train.drop_last": False,
            "train.schedule": "iteration",
        },
        "gaopengcuhk/Tip-Adapter main.py, configs",
    ),
    Recipe(
        "tip_adapter_f", (B2N,), ("eurosat",), {"train.epochs": 100}, "gaopengcuhk/Tip-Adapter configs/eurosat.yaml"
    ),
    # Cross-dataset / domain generalisation without a recipe of their own: the base-to-new recipe on ImageNet
    Recipe("adapter", (XD, DG), ("imagenet",), {**sgd(0.0015, 128, 1, False), "dra.start_layer": 7}, "as dra"),
    Recipe("kgcoop", (XD, DG), ("imagenet",), sgd(0.002, 128, 100), "KgCoOp vit_b16_ep100_ctxv1.yaml (no xd config)"),
    Recipe(
        "tcp",
        (XD, DG),
        ("imagenet",),
        {"train.optimizer": "adam", "train.epochs": 25, "train.batch_size": 32},
        "TCP vit_b16_ep100_ctxv1.yaml, LOADEP 25 (no xd config)",
    ),
    Recipe(
        "metaprompt",
        (XD, DG),
        ("imagenet",),
        {**sgd(0.0015, 16, 8), "metaprompt.imagenet_ensemble": True},
        "MetaPrompt Meta_B2N/vit_b16.yaml (Meta_DG is a multi-source protocol)",
    ),
    Recipe(
        "lfa",
        (XD, DG),
        ("imagenet",),
        {"lfa.iterations": 100, "lfa.imagenet_ensemble": True},
        "LFA README ImageNet n-iters (no xd command with beta 0.9 read here)",
    ),
    Recipe(
        "clip_lora",
        (XD, DG),
        ("imagenet",),
        {"train.iterations": 8000, "train.schedule": "iteration"},
        "CLIP-LoRA run_utils.py (no xd recipe)",
    ),
    Recipe("clip_adapter", (XD, DG), ("imagenet",), sgd(0.002, 32, 50), "CoOp vit_b16_ep50_ctxv1.yaml (CoOp's recipe)"),
    Recipe("tip_adapter", (XD, DG), ("imagenet",), {"tip_adapter.alpha": 1.17}, "Tip-Adapter configs/imagenet.yaml"),
    Recipe(
        "tip_adapter_f",
        (XD, DG),
        ("imagenet",),
        {"train.epochs": 20, "train.batch_size": 256},
        "Tip-Adapter configs/imagenet.yaml",
    ),
    Recipe("proda", (XD, DG), ("imagenet",), sgd(0.002, 32, 50), "ours"),
    # ProDA: no official code; our configuration (../shared/BASELINES.md section 10)
    Recipe(
        "proda",
        (B2N,),
        ("imagenet", "eurosat"),
        {
            **sgd(0.002, 32, 50),
            "proda.n_prompts": 32,
            "proda.n_ctx": 16,
            "proda.prompt_batch": 8,
            "proda.diversity_weight": 1.0,
        },
        "ours (no official code; BASELINES.md 10)",
    ),
]


def lookup(settings: dict, key: str):
    value = settings
    for part in key.split("."):
        value = value[part]
    return value


def markdown_table() -> str:
    """One row per recipe: method, protocols, datasets, the values, the source."""
    rows = ["| method | protocols | datasets | published values | source |", "|---|---|---|---|---|"]
    for r in RECIPES:
        values = ", ".join(f"{k}={v}" for k, v in r.values.items())
        datasets = "all 11" if r.datasets == ELEVEN else ", ".join(r.datasets)
        rows.append(f"| `{r.method}` | {', '.join(r.protocols)} | {datasets} | {values} | {r.source} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
