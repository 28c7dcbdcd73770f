"""Every method through the same checks (as PEFT's testing_common / timm's test_models do):

forward on the tiny config, gradients on exactly `learned_modules()`, exact ViT-B/16 counts, checkpoint
round trip, `unload()` restoring CLIP, and a short base-to-new run on the embedded shapes set.
Every registered method (`dra.methods.method_names()`) runs through them; its entry of SPECS holds what
the checks expect of it (the first test fails until it has one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

from conftest import TINY, meta_backbone
from dra.backbones import load_backbone
from dra.checkpoints import load_model, save_adapters
from dra.methods import METHODS, build_method, method_names
from dra.settings import load_settings

CLASSES = ["circle", "square", "triangle"]


@dataclass
class Spec:
    tiny: dict = field(default_factory=dict)
    """Config for the tiny model (6 blocks per tower)."""
    vit_b16: dict | None = None
    """Exact `parameter_counts()` on ViT-B/16 with the published config (None: depends on the data)."""
    trainable: bool = True
    zero_grad_ok: tuple[str, ...] = ()
    """Learned tensors whose gradient may be exactly zero (e.g. a LoRA A while B is still 0)."""
    cache: bool = False
    """Builds a cache from training images first (`fit_cache`, as the protocols call it)."""


# ViT-B/16: text width 512, image width 768, 12 + 12 blocks.
SPECS: dict[str, Spec] = {
    # DRA: 8 x 53,120 image + 8 x 36,480 text (tests/test_model.py spells these out)
    "dra": Spec(
        {"start_layer": 5},
        {"trainable": 716_800, "image": 424_960, "text": 291_840},
        zero_grad_ok=("channel_proj.bias",),
    ),
    # plain adapter: 8 x 51,008 image + 8 x 34,368 text
    "adapter": Spec({"start_layer": 5}, {"trainable": 683_008, "image": 408_064, "text": 274_944}),
    "zeroshot": Spec({}, {"trainable": 0, "image": 0, "text": 0}, trainable=False),
    # MMA: per block 768*32+32 + 32*768+768 = 49,952 (image), 512*32+32 + 32*512+512 = 33,312 (text),
    # shared 32*32+32 = 1,056; blocks 5..12 = 8 -> 399,616 + 266,496 + 8,448 = 674,560
    "mma": Spec({"start_layer": 5}, {"trainable": 674_560, "image": 399_616, "text": 266_496, "shared": 8_448}),
    # prompt learners (tests/test_prompt_methods.py spells the sums out): context 4 x 512; CoCoOp's Meta-Net
    # 512 -> 32 -> 512; MaPLe 9 x 2 x 512 prompts (text) + 9 x (512*768 + 768) couplings (image); TCP's TKE
    "coop": Spec({}, {"trainable": 2_048, "image": 0, "text": 2_048}),
    "kgcoop": Spec({}, {"trainable": 2_048, "image": 0, "text": 2_048}),
    # (the random tiny CLIP's image features are nearly equal: 64 / 16 = 4 hidden ReLUs can all be off)
    "cocoop": Spec({"meta_reduction": 2}, {"trainable": 35_360, "image": 0, "text": 35_360}),
    "maple": Spec({"depth": 4}, {"trainable": 3_555_072, "image": 3_545_856, "text": 9_216}),
    "tcp": Spec({"inject_layer": 3}, {"trainable": 331_904, "image": 0, "text": 331_904}),
    # CLIP-LoRA: per block and projection A (2 x d) + B (d x 2) = 4d; q, k, v -> 12d per block, 12 blocks:
    # image 12 * 12 * 768 = 110,592, text 12 * 12 * 512 = 73,728 -> 184,320. A gets no gradient while B = 0.
    "clip_lora": Spec({}, {"trainable": 184_320, "image": 110_592, "text": 73_728}, zero_grad_ok=("_A",)),
    # CLIP-Adapter: 512 -> 128 -> 512 without biases: 2 * 512 * 128 = 131,072
    "clip_adapter": Spec({}, {"trainable": 131_072, "image": 131_072, "text": 0}),
    # Tip-Adapter: nothing learned by SGD (the cache is built); Tip-Adapter-F: N*K x 512 keys (data-dependent)
    "tip_adapter": Spec(
        {"search_steps_beta": 5, "search_steps_alpha": 5, "augment_views": 2},
        {"trainable": 0, "image": 0, "text": 0},
        trainable=False,
        cache=True,
    ),
    "tip_adapter_f": Spec({"search_steps_beta": 5, "search_steps_alpha": 5, "augment_views": 2}, None, cache=True),
    # MetaPrompt: 12 layers x 2 tokens in each tower: 12 * 2 * 512 = 12,288 (text) + 12 * 2 * 768 = 18,432 (image)
    "metaprompt": Spec({"layers": 6}, {"trainable": 30_720, "image": 18_432, "text": 12_288}),
    # LFA: one 512 x 512 map on the image features (fitted in fit_cache; the EMA map is a buffer)
    "lfa": Spec({"iterations": 5}, {"trainable": 262_144, "image": 262_144, "text": 0}, cache=True),
    # ProDA: K = 32 prompts x M = 16 tokens x 512 = 262,144
    "proda": Spec({"n_prompts": 4, "n_ctx": 4, "prompt_batch": 2}, {"trainable": 262_144, "image": 0, "text": 262_144}),
}


def test_every_method_has_a_settings_file_and_a_spec():
    from importlib import resources

    packaged = {
        p.name[:-5] for p in (resources.files("dra") / "configs" / "methods").iterdir() if p.name.endswith(".yaml")
    }
    assert packaged == set(method_names())  # one packaged configs/methods/<name>.yaml per registered method
    assert set(method_names()) == set(METHODS)
    assert set(SPECS) == set(METHODS)


def test_one_registration_gives_name_config_and_section():
    from dra.config import DRAConfig, LoRAConfig, TipAdapterConfig
    from dra.methods import method_sections
    from dra.methods.adapted import AdaptedCLIP
    from dra.settings import METHOD_SECTIONS

    lora = METHODS["clip_lora"]
    assert (lora.method, lora.config_class, lora.config_section) == ("clip_lora", LoRAConfig, "lora")
    assert (METHODS["adapter"].config_class, METHODS["adapter"].config_section) == (DRAConfig, "dra")
    assert METHODS["tip_adapter_f"].config_section == "tip_adapter"
    assert (METHODS["zeroshot"].config_class, METHODS["zeroshot"].config_section) == (None, None)
    assert AdaptedCLIP.method is None  # the shared base of dra, adapter and mma is no method

    class MyDRA(METHODS["dra"]):
        pass

    assert (MyDRA.method, MyDRA.config_section) == ("dra", "dra")  # a subclass is its registered parent
    sections = method_sections()
    assert sections["lora"] is LoRAConfig and sections["tip_adapter"] is TipAdapterConfig
    assert "clip_lora" not in sections and len(sections) == 13  # 16 methods; zeroshot none, two pairs share
    assert METHOD_SECTIONS == sections


def test_method_names_import_no_torch():
    import subprocess
    import sys

    code = "import sys, dra.settings, dra.methods; dra.methods.method_names(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _build(method: str, backbone, classes=CLASSES):
    model = build_method(method, backbone, list(classes), SPECS[method].tiny or None)
    if SPECS[method].cache:
        from dra.data import build_dataset, clip_transforms

        items = [d for d in build_dataset("shapes").train if d.label < len(classes)]
        train = [d for label in range(len(classes)) for d in [x for x in items if x.label == label][:2]]
        val = [d for label in range(len(classes)) for d in [x for x in items if x.label == label][2:4]]
        model.fit_cache(train, clip_transforms(backbone.preprocess), "cpu", val)
        assert getattr(model, "cache_active", True)
    return model


def _learned(model) -> dict[int, str]:
    return {id(p): f"{prefix}.{n}" for prefix, m in model.learned_modules().items() for n, p in m.named_parameters()}


@pytest.mark.parametrize("method", method_names())
def test_forward_on_the_tiny_model(tiny_backbone, method):
    torch.manual_seed(0)
    model = _build(method, tiny_backbone)
    images = torch.randn(4, 3, 32, 32)
    for mode in (True, False):
        model.train(mode)
        logits = model(images)
        assert logits.shape == (4, len(CLASSES)) and torch.isfinite(logits).all()


@pytest.mark.parametrize("method", [m for m in method_names() if SPECS.get(m, Spec()).trainable])
def test_gradients_reach_exactly_the_learned_tensors(tiny_backbone, method):
    torch.manual_seed(0)
    model = _build(method, tiny_backbone).train()
    learned = _learned(model)
    assert learned, "a trainable method learns something"
    assert {id(p) for p in model.parameters() if p.requires_grad} == set(learned)
    loss, _ = model.loss(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    for p in model.parameters():
        if id(p) not in learned:
            assert p.grad is None
            continue
        name = learned[id(p)]
        assert p.grad is not None, name
        if not any(name.endswith(s) for s in SPECS[method].zero_grad_ok):
            assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("method", [m for m in method_names() if SPECS.get(m, Spec()).vit_b16 is not None])
def test_exact_counts_on_vit_b16(method):
    backbone = meta_backbone("ViT-B-16")
    model = build_method(method, backbone, ["a"])
    try:
        counts = model.parameter_counts()
        assert counts == SPECS[method].vit_b16
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == counts["trainable"]
        assert sum(t.numel() for t in model.adapter_state_dict().values()) >= counts["trainable"]
    finally:
        model.unload()


@pytest.mark.parametrize("method", method_names())
def test_checkpoint_round_trip_gives_identical_logits(tmp_path, method):
    torch.manual_seed(0)
    model = _build(method, load_backbone(TINY)).eval()
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.05 * torch.randn_like(p))  # away from any zero initialisation
    images = torch.randn(3, 3, 32, 32)
    want = model(images)
    path = save_adapters(model, tmp_path / "ckpt")
    again = load_model(path, pretrained="").eval()  # a fresh model on the same (seeded random) backbone
    assert again.method == method and again.method_config() == model.method_config()
    torch.testing.assert_close(again(images), want, rtol=0, atol=0)


@pytest.mark.parametrize("method", method_names())
def test_unload_restores_clip(tiny_backbone, method):
    modules = {n: m for n, m in tiny_backbone.named_modules()}
    keys = set(tiny_backbone.state_dict())
    images = torch.randn(2, 3, 32, 32)
    zeroshot = build_method("zeroshot", tiny_backbone, CLASSES).eval()
    want = zeroshot(images)
    model = _build(method, tiny_backbone)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.5)
    model.eval()(images)
    model.unload()
    assert {n: m for n, m in tiny_backbone.named_modules()} == modules
    assert set(tiny_backbone.state_dict()) == keys
    zeroshot.clear_text_cache()
    torch.testing.assert_close(zeroshot(images), want, rtol=0, atol=0)


QUICK = [
    "train.epochs=1",
    "train.iterations_per_shot=0",  # CLIP-LoRA trains by iterations (500 x shots): here one epoch
    "train.warmup_epochs=0",
    "train.batch_size=4",
    "train.num_workers=0",
    "eval.num_workers=0",
    "eval.batch_size=50",
    "test_per_class=2",
]


@pytest.mark.parametrize("method", method_names())
def test_short_base2new_on_shapes(tmp_path, method):
    from dra.protocols import base2new

    values = {
        "method": method,
        "model": TINY,
        "datasets": ["shapes"],
        "seeds": [1],
        "shots": 2,
        "output": str(tmp_path),
    }
    section = METHODS[method].config_section
    extra = [f"{section}.{k}={v}" for k, v in SPECS[method].tiny.items()]
    cfg = load_settings("base2new", values, [*QUICK, *extra])
    cfg.pretrained = None
    out = base2new.run(cfg, echo=lambda *_: None)
    (record,) = out["records"]
    assert record["base_classes"] == 5 and record["new_classes"] == 5
    assert 0 <= record["base"] <= 100 and 0 <= record["new"] <= 100
    assert (out["output"] / "base2new.md").is_file()
