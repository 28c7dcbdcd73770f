"""`dra pocket pretrain --recipe attributes` (experimental; a simulation): the attribute-prompt term against a
plain reference, the labels and prompts it reads, a few steps that run and resume exactly, and probing a run
folder's checkpoint while it goes on."""

from __future__ import annotations

import json
import math

import pytest
import torch

from dra.data.generated import world as W
from dra.pocket import probe
from dra.pocket.attributes import ATTRIBUTES, phrase, values
from dra.pocket.pretrain import (
    PretrainSettings,
    WorldBatches,
    attribute_labels,
    attribute_loss,
    attribute_prompts,
    pretrain,
    read_run,
    stage_at,
)
from safety_helpers import invoke, one_error_line

SIZES = [len(values(a)) for a in ATTRIBUTES]  # 10, 10, 6, 2, 6, 8


def test_the_prompts_are_one_per_value_of_every_attribute_in_one_frame():
    prompts = attribute_prompts("a drawing of {}.")
    assert len(prompts) == sum(SIZES) == 42
    assert prompts[0] == "a drawing of circle." and prompts[10] == "a drawing of red object."
    assert prompts[sum(SIZES[:4])] == "a drawing of one object." and prompts[-1] == "a drawing of ocean water."
    assert attribute_labels("count") == {k: k - 1 for k in range(1, 7)}


def test_the_attribute_term_is_the_mean_of_one_cross_entropy_per_attribute():
    torch.manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(sum(SIZES), 8), dim=-1)
    labels = torch.stack([torch.randint(0, k, (5,)) for k in SIZES], 1)
    scale = torch.tensor(7.0)
    reference, start = 0.0, 0
    for j, k in enumerate(SIZES):  # plain softmax cross-entropy, attribute by attribute, image by image
        for i in range(5):
            logits = [float(scale * image[i] @ text[start + v]) for v in range(k)]
            top = max(logits)
            log_z = top + math.log(sum(math.exp(x - top) for x in logits))
            reference += (log_z - logits[int(labels[i, j])]) / 5
        start += k
    assert float(attribute_loss(image, text, scale, labels)) == pytest.approx(reference / len(SIZES), rel=1e-5)


def test_a_batch_carries_each_scenes_value_indices():
    data = WorldBatches(0, 8, "ViT-Pocket", "attributes", steps=4)
    images, tokens, prompt_tokens, labels = data[1]
    assert images.shape[0] == tokens.shape[0] == labels.shape[0] == 8
    assert prompt_tokens.shape[0] == sum(SIZES) and labels.shape == (8, len(ATTRIBUTES))
    assert stage_at(1, 4) == "counts"
    scenes = [s for _, _, s in W.sample_curriculum_group(0, 2, "counts")]  # groups 2, 3 make batch 1
    assert [values("shape")[i] for i in labels[:4, 0].tolist()] == [s.shape for s in scenes]
    assert phrase("background", values("background")[int(labels[0, 5])]) == scenes[0].background


def test_a_few_attribute_steps_run_resume_exactly_and_a_run_folder_can_be_probed(tmp_path):
    s = PretrainSettings(
        steps=6, batch_size=8, lr=2e-3, warmup=2, seed=0, checkpoint_every=3, threads=1, workers=0, recipe="attributes"
    )
    quiet = {"progress": False, "echo": lambda *_: None}
    whole = pretrain(s, tmp_path / "whole", **quiet)
    stopped = tmp_path / "stopped"
    pretrain(s, stopped, **quiet, stop_after=3)
    model, step, state = read_run(stopped)
    assert (model, step) == ("ViT-Pocket-P6", 3) and "logit_scale" in state
    out = invoke("pocket", "probe", "--weights", stopped, "--json", "--train-scenes", "20", "--test-scenes", "20")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["step"] == 3
    pretrain(s, stopped, **quiet)
    a = json.loads((tmp_path / "whole" / "checkpoint.json").read_text())["losses"]
    b = json.loads((stopped / "checkpoint.json").read_text())["losses"]
    assert len(a) == 6 and a == b and all(math.isfinite(x) for x in a)
    assert whole["recipe"] == "attributes" and "--recipe attributes" in whole["command"]


def test_probing_a_folder_without_a_checkpoint_is_one_error_line(tmp_path):
    line = one_error_line(invoke("pocket", "probe", "--weights", tmp_path))
    assert str(tmp_path) in line and "without a pretraining checkpoint" in line


def test_the_probe_reads_the_shared_attribute_words():
    assert probe.ATTRIBUTES == ATTRIBUTES and probe.prompts("shape")[0] == "a photo of a circle."


def test_a_finished_run_records_its_probe_in_pocket_json(tmp_path):
    s = PretrainSettings(steps=2, batch_size=8, warmup=1, threads=1, workers=0, model="ViT-Pocket")
    pretrain(s, tmp_path, progress=False, echo=lambda *_: None)
    summary = probe.record_probe(tmp_path, settings=probe.ProbeSettings(train_scenes=20, test_scenes=20))
    meta = json.loads((tmp_path / "pocket.json").read_text())
    assert meta["probe"] == summary and meta["steps"] == 2 and "--recipe attributes" in meta["command"]
    assert list(summary["attributes"]) == list(ATTRIBUTES)
    assert set(summary["attributes"]["shape"]) == {
        "values", "zero_shot", "linear_probe", "random_init_linear_probe", "chance", "chance_kind"
    }  # fmt: skip
