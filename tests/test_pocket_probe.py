"""`dra pocket probe` (a simulation): chance, the linear probe, the JSON, errors, the shipped CLIP's colours."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dra.data.generated import world
from dra.pocket import probe
from safety_helpers import invoke, one_error_line


def test_chance_is_one_over_k_for_a_balanced_draw_and_the_majority_rate_for_an_unbalanced_one():
    assert probe.chance(np.arange(100) % 10, 10) == (10.0, "uniform")
    assert probe.chance(np.array([0, 1] * 50), 2) == (50.0, "uniform")
    assert probe.chance(np.array([0] * 80 + [1] * 20), 2) == (80.0, "majority")  # 80 > 50 + 4 * 5
    assert probe.chance(np.array([0] * 69 + [1] * 31), 2) == (50.0, "uniform")  # within four standard errors
    assert probe.chance(np.array([2, 2, 2, 0]), 3) == (100.0 / 3, "uniform")  # four labels prove nothing


def test_the_size_draw_is_unbalanced_and_its_chance_is_its_majority_rate():
    _, scenes = probe.draw(1000, 0, 200)
    small = sum(s.size == "small" for s in scenes)  # four to six objects are always small
    assert probe.chance(probe.labels_of(scenes, "size"), 2) == (100.0 * small / 200, "majority")
    assert small > 120


def test_prompts_are_the_worlds_phrases_one_per_value():
    from dra.data.generated.pocket import POCKET_DATASETS

    assert probe.prompts("count")[:2] == ["a photo of a one object.", "a photo of a two objects."]
    assert probe.prompts("size") == ["a photo of a small object.", "a photo of a large object."]
    for attribute, dataset in [
        ("shape", "pocket_shapes"),
        ("colour", "pocket_colours"),
        ("pattern", "pocket_patterns"),
        ("count", "pocket_counting"),
        ("background", "pocket_scenes"),
    ]:  # the benchmark's class names are the same phrases
        assert [probe.phrase(attribute, v) for v in probe.values(attribute)] == list(
            POCKET_DATASETS[dataset].classnames
        )


def test_the_linear_probe_is_perfect_on_one_hot_features_and_a_constant_guess_on_constant_ones():
    rng = np.random.default_rng(0)
    y_train, y_test = rng.integers(0, 6, 120), rng.integers(0, 6, 80)
    onehot = torch.eye(6)
    assert probe.linear_probe(onehot[y_train], y_train, onehot[y_test], y_test, 6) == 100.0
    const_train, const_test = torch.ones(120, 5), torch.ones(80, 5)
    majority = np.bincount(y_train).argmax()
    accuracy = probe.linear_probe(const_train, y_train, const_test, y_test, 6)
    assert accuracy == pytest.approx(100.0 * np.mean(y_test == majority))  # the train draw's majority class
    assert accuracy < 30  # about chance (16.7)


def test_probe_json_has_the_four_numbers_per_attribute_and_the_settings():
    out = invoke("pocket", "probe", "--json", "--train-scenes", "60", "--test-scenes", "40", "--seed", "7")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["simulation"] is True and data["weights"].endswith("pocket.safetensors")
    assert data["settings"]["seed"] == 7 and data["settings"]["test_indices"] == [60, 100]
    rows = {r["attribute"]: r for r in data["attributes"]}
    assert list(rows) == ["shape", "colour", "pattern", "size", "count", "background"]
    keys = {"attribute", "values", "zero_shot", "linear_probe", "random_init_linear_probe", "chance", "chance_kind"}
    assert all(set(r) == keys for r in rows.values())
    assert [rows[a]["values"] for a in rows] == [10, 10, 6, 2, 6, 8]
    assert rows["shape"]["chance"] == 10.0 and rows["background"]["chance"] == 12.5
    for r in rows.values():  # accuracies on 40 scenes: multiples of 2.5
        for key in ("zero_shot", "linear_probe", "random_init_linear_probe"):
            assert 0 <= r[key] <= 100 and (r[key] / 2.5) == int(r[key] / 2.5)
    table = invoke("pocket", "probe", "--train-scenes", "60", "--test-scenes", "40", "--seed", "7")
    assert "SIMULATION" in table.stdout and f"{rows['colour']['zero_shot']:.2f}" in table.stdout


@pytest.mark.parametrize("content", [None, b"not a checkpoint"])
def test_a_missing_or_bad_weights_file_is_one_error_line(tmp_path, content):
    path = tmp_path / "w.safetensors"
    if content is not None:
        path.write_bytes(content)
    line = one_error_line(invoke("pocket", "probe", "--weights", path))
    assert str(path) in line and ("does not exist" in line if content is None else "not a readable" in line)


def test_the_shipped_pocket_clip_sees_colours_and_backgrounds_zero_shot():
    trained, _, tokenizer, *_ = probe.load_towers(None)
    images, scenes = probe.draw(1000, 600, 100)
    features = probe.image_features(trained, images)
    colour = probe.zero_shot(trained, tokenizer, features, probe.labels_of(scenes, "colour"), "colour")
    background = probe.zero_shot(trained, tokenizer, features, probe.labels_of(scenes, "background"), "background")
    assert colour > 40 and background > 80  # chance 10 and 12.5
    assert world.SCENES[0] in probe.prompts("background")[0]
