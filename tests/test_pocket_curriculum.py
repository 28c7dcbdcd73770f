"""`dra pocket pretrain --recipe curriculum` (experimental; a simulation): its stages draw what they
say, its groups differ in exactly one attribute, and a few steps run and resume exactly."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from dra.data.generated import world as W
from dra.errors import SettingsError
from dra.pocket.pretrain import CURRICULUM, PretrainSettings, WorldBatches, pretrain, stage_at

ATTRIBUTES = ("shape", "colour", "pattern", "size", "count", "background")


def _names_every_attribute(text: str, scene: W.Scene) -> bool:
    noun = W.plural(scene.shape) if scene.count > 1 else scene.shape
    words = re.findall(r"[a-z-]+", text)
    count_ok = scene.count == 1 or W.COUNT_WORDS[scene.count - 1] in words
    return (
        count_ok
        and noun in words
        and scene.size in words
        and scene.colour in words
        and scene.pattern in words
        and scene.background in text
    )


def test_stage_one_draws_one_large_object_with_a_complete_caption():
    for g in range(40):
        for image, text, scene in W.sample_curriculum_group(0, g, "single"):
            assert scene.count == 1 and scene.size == "large", (g, scene)
            assert _names_every_attribute(text, scene), (text, scene)
            assert image.size == (W.IMAGE_SIZE, W.IMAGE_SIZE)


def test_stage_two_draws_counts_with_complete_captions_and_stage_three_is_the_default_groups():
    counts = set()
    for g in range(60):
        for _, text, scene in W.sample_curriculum_group(0, g, "counts"):
            counts.add(scene.count)
            assert _names_every_attribute(text, scene), (text, scene)
    assert counts == set(range(1, W.MAX_COUNT + 1))
    full, default = W.sample_curriculum_group(3, 7, "full"), W.sample_group(3, 7)
    assert [t for _, t, _ in full] == [t for _, t, _ in default]
    assert np.array_equal(np.asarray(full[0][0]), np.asarray(default[0][0]))


@pytest.mark.parametrize("stage", W.CURRICULUM_STAGES)
def test_curriculum_groups_differ_in_exactly_one_attribute_weighted_to_shape_and_pattern(stage):
    differing = []
    for g in range(120):
        scenes = [s for _, _, s in W.sample_curriculum_group(1, g, stage)]
        diff = [a for a in ATTRIBUTES if len({getattr(s, a) for s in scenes}) > 1]
        assert len(diff) == 1, (stage, g, scenes)
        assert len({getattr(s, diff[0]) for s in scenes}) == len(scenes)  # distinct values
        differing.append(diff[0])
    share = {a: differing.count(a) / len(differing) for a in ATTRIBUTES}
    assert share["shape"] + share["pattern"] >= 0.4, share
    assert share["colour"] + share["background"] <= 0.35, share
    if stage == "single":
        assert share["count"] == 0 and share["size"] == 0


def test_the_curriculum_stage_follows_the_step():
    assert [stage_at(k, 100) for k in (0, 24, 25, 49, 50, 99)] == ["single"] * 2 + ["counts"] * 2 + ["full"] * 2
    assert CURRICULUM[-1] == (1.0, "full")
    data = WorldBatches(0, 8, "ViT-Pocket", "curriculum", steps=4)
    images, tokens = data[0]
    assert images.shape == (8, 3, W.IMAGE_SIZE, W.IMAGE_SIZE) and tokens.shape[0] == 8


def test_a_few_curriculum_steps_run_and_resume_exactly(tmp_path):
    s = PretrainSettings(
        steps=8, batch_size=8, lr=2e-3, warmup=2, seed=0, checkpoint_every=4, threads=1, workers=0, recipe="curriculum"
    )
    quiet = {"progress": False, "echo": lambda *_: None}
    whole = pretrain(s, tmp_path / "whole", **quiet)
    stopped = tmp_path / "stopped"
    pretrain(s, stopped, **quiet, stop_after=4)  # interrupted after the step-4 checkpoint
    assert json.loads((stopped / "checkpoint.json").read_text())["step"] == 4
    resumed = pretrain(s, stopped, **quiet)
    a = json.loads((tmp_path / "whole" / "checkpoint.json").read_text())["losses"]
    b = json.loads((stopped / "checkpoint.json").read_text())["losses"]
    assert len(a) == 8 and a == b
    assert whole["recipe"] == resumed["recipe"] == "curriculum" and "--recipe curriculum" in whole["command"]
    with pytest.raises(SettingsError, match="other settings"):  # the stages depend on --steps
        pretrain(PretrainSettings(**{**s.__dict__, "steps": 12}), stopped, **quiet)
    with pytest.raises(SettingsError, match="other settings"):  # nor does a curriculum run resume as groups
        pretrain(PretrainSettings(**{**s.__dict__, "recipe": "groups"}), stopped, **quiet)


def test_an_unknown_recipe_is_one_clear_error():
    with pytest.raises(SettingsError, match="--recipe must be one of groups, curriculum, attributes"):
        PretrainSettings(recipe="fancy")
