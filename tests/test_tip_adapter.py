"""Tip-Adapter's equations: the cache term, zero-shot on other classes, the official search grid."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from dra.config import TipAdapterConfig
from dra.data import build_dataset, clip_transforms
from dra.methods import build_method
from dra.methods.tip_adapter import grid


def _fitted(backbone, method="tip_adapter", search=False):
    ds = build_dataset("shapes")
    names = ds.classnames[:3]
    train = [d for d in ds.train if d.label < 3][:12]
    model = build_method(method, backbone, names, TipAdapterConfig(augment_views=2, search=search, alpha=2.0, beta=3.0))
    torch.manual_seed(0)
    model.fit_cache(train, clip_transforms(backbone.preprocess), "cpu", [d for d in ds.val if d.label < 3])
    return model, names, train


def test_logits_are_zero_shot_plus_alpha_times_the_cache(tiny_backbone):
    model, names, train = _fitted(tiny_backbone)
    model.eval()
    assert model.cache.keys.shape == (len(train), tiny_backbone.clip.visual.output_dim)
    torch.testing.assert_close(model.cache.keys.norm(dim=-1), torch.ones(len(train)))
    assert torch.equal(model.cache.values, F.one_hot(torch.tensor([d.label for d in train]), 3).float())
    images = torch.randn(2, 3, 32, 32)
    f = model.image_features(images)
    zs = build_method("zeroshot", tiny_backbone, names).eval()(images)
    cache = torch.exp(-3.0 * (1 - f @ model.cache.keys.t())) @ model.cache.values
    torch.testing.assert_close(model(images), zs + 2.0 * cache)
    model.set_classnames(["a", "b"])  # new classes: no cache columns -> zero-shot CLIP
    torch.testing.assert_close(model(images), build_method("zeroshot", tiny_backbone, ["a", "b"]).eval()(images))


def test_search_grid_is_the_official_one_and_sets_alpha_beta(tiny_backbone):
    assert grid(7, 200)[:2] == [0.1, 0.1 + 6.9 / 200] and len(grid(7, 200)) == 200 and max(grid(3, 20)) < 3
    model, _, _ = _fitted(tiny_backbone, search=True)
    cfg = model.config
    assert float(model.cache.beta) in [
        float(torch.tensor(b)) for b in grid(cfg.search_scale_beta, cfg.search_steps_beta)
    ]


def test_tip_adapter_f_learns_the_keys(tiny_backbone):
    model, _, train = _fitted(tiny_backbone, "tip_adapter_f")
    assert [p is model.cache.keys for p in model.trainable_parameters()] == [True]
    assert model.parameter_counts()["trainable"] == len(train) * tiny_backbone.clip.visual.output_dim


def test_tip_adapter_f_searches_after_training(tiny_backbone):

    model, _, _ = _fitted(tiny_backbone, "tip_adapter_f", search=True)
    assert (float(model.cache.alpha), float(model.cache.beta)) == (2.0, 3.0)  # the init values while training
    val = [d for d in build_dataset("shapes").val if d.label < 3]
    assert model.finish_training(val, clip_transforms(tiny_backbone.preprocess), "cpu")
    cfg = model.config
    assert float(model.cache.beta) in [
        float(torch.tensor(b)) for b in grid(cfg.search_scale_beta, cfg.search_steps_beta)
    ]


@pytest.mark.parametrize("search_set", ["full", "fewshot"])
def test_the_search_set_is_the_whole_val_split_or_the_draw(tmp_path, search_set):
    from dra.protocols.experiment import Experiment
    from dra.settings import load_settings

    values = {"method": "tip_adapter", "datasets": ["shapes"], "shots": 2, "output": str(tmp_path)}
    cfg = load_settings("base2new", values, [f"tip_adapter.search_set={search_set}"])
    exp = Experiment(cfg, backbone=object(), writes=False)
    full = build_dataset("shapes")
    drawn = exp.draw(cfg, "shapes", 1)
    want = len(full.val) if search_set == "full" else 2 * len(full.classnames)  # min(shots, 4) per class
    assert len(drawn.val) == want
    other = load_settings("base2new", values, ["tip_adapter.search_set=fewshot"])
    assert drawn.train == exp.draw(other, "shapes", 1).train  # the training draw does not change
