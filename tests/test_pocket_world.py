"""The pocket world (a simulation): deterministic generator, caption grammar, the single-attribute pocket datasets."""

from __future__ import annotations

import numpy as np

from dra.data.generated import pocket as P
from dra.data.generated import world as W


def test_same_seed_same_pixels_and_caption():
    a, b, c = W.sample(3, 17), W.sample(3, 17), W.sample(4, 17)
    assert np.array_equal(np.asarray(a[0]), np.asarray(b[0])) and a[1] == b[1] and a[2] == b[2]
    assert not np.array_equal(np.asarray(a[0]), np.asarray(c[0]))
    assert a[0].size == (W.IMAGE_SIZE, W.IMAGE_SIZE) and a[0].mode == "RGB"


def test_shifted_rendering_is_deterministic_and_differs_from_pretraining():
    x = np.asarray(P.render_item("pocket_shapes", 2, 5))
    assert np.array_equal(x, np.asarray(P.render_item("pocket_shapes", 2, 5)))
    assert not np.array_equal(np.asarray(P.render_item("pocket_shapes", 2, 5, W.Shift())), x)


def test_a_tint_is_the_same_colour_cast_on_every_image_and_draws_no_randomness():
    import random

    scene = W.Scene("circle", "white", "plain", "large", 1, "snow field")
    plain = np.asarray(W.render(scene, random.Random(7)), np.float32)
    cast = np.asarray(W.render(scene, random.Random(7), W.Shift(tint=(0.5, 1.0, 0.25))), np.float32)
    np.testing.assert_allclose(cast, np.floor(plain * [0.5, 1.0, 0.25]), atol=1.0)  # same pixels, scaled
    assert not W.Shift(tint=(0.5, 1.0, 1.0)).is_identity and W.Shift().is_identity
    assert P.POCKET_DATASETS["pocket_colours"].shift.tint == W.COLD_LAMP_SHIFT.tint != (1.0, 1.0, 1.0)


def test_captions_use_the_class_words():
    import random

    rng = random.Random(0)
    scene = W.Scene("star", "red", "striped", "large", 3, "brick wall")
    caps = {W.caption(scene, rng) for _ in range(200)}
    assert len(caps) > 30  # several phrasings
    assert all(c.endswith(".") for c in caps)
    assert any("three" in c and "stars" in c for c in caps)
    assert any("brick wall" in c for c in caps)
    assert any("striped" in c for c in caps)


def test_pocket_datasets_sizes_and_classes(tmp_path, monkeypatch):
    from dra.data import build_dataset, fewshot, subsample_classes
    from dra.data.registry import DATASETS, POCKET_BENCHMARK

    monkeypatch.setenv("DRA_CACHE_DIR", str(tmp_path))
    assert POCKET_BENCHMARK == (
        "pocket_colour_shape",
        "pocket_pattern_shape",
        "pocket_count_colour",
        "pocket_colour_scene",
        "pocket_shortcut",
        "pocket_dusk",
        "pocket_colours",
    )
    expected = {
        "pocket_shapes": list(W.SHAPES),
        "pocket_patterns": [
            "plain object",
            "striped object",
            "dotted object",
            "checkered object",
            "outlined object",
            "two-tone object",
        ],
        "pocket_scenes": list(W.SCENES),
        "pocket_colours": [f"{c} object" for c in W.COLOURS],
        "pocket_objects": [
            f"{c} object on a {b}"
            for c in ("red", "blue", "yellow", "white")
            for b in ("grass field", "brick wall", "night sky", "sandy beach")
        ],
        "pocket_dusk": list(W.SCENES),
        "pocket_counting": [
            "one object",
            "two objects",
            "three objects",
            "four objects",
            "five objects",
            "six objects",
        ],
    }
    d = build_dataset("pocket_counting")  # generated into the cache on first use
    n = len(expected["pocket_counting"])
    assert d.classnames == expected["pocket_counting"]
    assert (len(d.train), len(d.val), len(d.test)) == (32 * n, 8 * n, 50 * n)
    assert DATASETS["pocket_counting"].expected_counts == (32 * n, 8 * n, 50 * n)
    for name, classes in expected.items():
        assert list(P.POCKET_DATASETS[name].classnames) == classes
        assert DATASETS[name].num_classes == len(classes) and DATASETS[name].embedded
    splits = fewshot(d, 16, 1)
    base, new = subsample_classes(splits, "base"), subsample_classes(splits, "new")
    assert base.classnames == expected["pocket_counting"][:3] and len(base.train) == 48
    assert len(new.test) == 150
    assert build_dataset("pocket_counting").train[5] == d.train[5]  # read back, not regenerated


def test_pretraining_groups_differ_in_one_named_attribute():
    group = W.sample_group(0, 11)
    again = W.sample_group(0, 11)
    assert [c for _, c, _ in group] == [c for _, c, _ in again]
    assert np.array_equal(np.asarray(group[2][0]), np.asarray(again[2][0]))
    scenes = [s for _, _, s in group]
    fields = ("shape", "colour", "pattern", "count", "background")
    varying = [f for f in fields if len({getattr(s, f) for s in scenes}) > 1]
    assert len(varying) == 1 and len({getattr(s, varying[0]) for s in scenes}) == 4
    words = {"count": lambda s: W.COUNT_WORDS[s.count - 1]}
    for _, text, s in group:
        word = words.get(varying[0], lambda s: getattr(s, varying[0]))(s)
        assert (
            word in text
            or (varying[0] == "count" and s.count == 2 and "pair" in text)
            or (varying[0] == "pattern" and text)
        ), text


def test_both_generators_draw_with_the_shared_rasteriser():
    import pytest
    from PIL import Image, ImageDraw

    from dra.data.generated import shapes as E
    from dra.drawing import SHAPES, draw_shape

    assert {s for _, _, s in E.SHAPES_CLASSES} | set(W.SHAPES) == set(SHAPES)
    for shape in SHAPES:
        mask = Image.new("L", (40, 40), 0)
        draw_shape(ImageDraw.Draw(mask), shape, 20, 20, 12, 0.0, 1.0)
        assert 0 < np.count_nonzero(np.asarray(mask)) < 40 * 40, shape
    with pytest.raises(ValueError, match="unknown shape 'blob'"):
        draw_shape(ImageDraw.Draw(Image.new("L", (8, 8))), "blob", 4, 4, 2, 0.0, 0.0)
