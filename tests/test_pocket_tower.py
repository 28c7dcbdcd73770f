"""The pocket tower ViT-Pocket-P6 (6-px patches; a simulation): it builds with an exact
parameter count under the 20 MB fp16 budget, pretrains with `--model`, and the probe reads its weights."""

from __future__ import annotations

import json

import pytest

from dra.errors import SettingsError
from dra.pocket import MODEL, MODELS
from dra.pocket.pretrain import PretrainSettings, build_model, pretrain
from safety_helpers import invoke, one_error_line

SIZE_LIMIT = 20_000_000  # bytes of fp16 weights the package may hold (issue #17)


def test_the_p6_tower_builds_with_an_exact_parameter_count_under_the_size_limit():
    assert MODELS == ("ViT-Pocket-P6", "ViT-Pocket") and MODEL == "ViT-Pocket-P6"  # the shipped weights' tower
    model = build_model(PretrainSettings(model="ViT-Pocket-P6"))
    n = sum(p.numel() for p in model.parameters())
    assert n == 6_031_169  # ViT-Pocket: 6_038_337 (its 8-px patch embedding is larger, its grid smaller)
    assert 2 * n < SIZE_LIMIT  # fp16
    assert model.visual.conv1.kernel_size == (6, 6) and model.visual.positional_embedding.shape == (65, 128)


def test_an_unknown_model_is_one_clear_error():
    with pytest.raises(SettingsError, match="--model must be one of ViT-Pocket-P6, ViT-Pocket, got 'ViT-B-32'"):
        PretrainSettings(model="ViT-B-32")


def test_a_few_p6_steps_run_and_the_probe_reads_the_tower_from_pocket_json(tmp_path):
    s = PretrainSettings(steps=3, batch_size=8, warmup=1, threads=2, workers=0, model="ViT-Pocket-P6")
    meta = pretrain(s, tmp_path, progress=False, echo=lambda *_: None)
    assert meta["model"] == "ViT-Pocket-P6" and "--model ViT-Pocket-P6" in meta["command"]
    assert json.loads((tmp_path / "pocket.json").read_text())["model"] == "ViT-Pocket-P6"
    weights = tmp_path / "pocket.safetensors"
    out = invoke("pocket", "probe", "--weights", weights, "--json", "--train-scenes", "20", "--test-scenes", "10")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["model"] == "ViT-Pocket-P6" and "ViT-Pocket-P6" in data["settings"]["random_init"]
    assert [r["attribute"] for r in data["attributes"]] == ["shape", "colour", "pattern", "size", "count", "background"]
    line = one_error_line(invoke("pocket", "probe", "--weights", weights, "--model", "ViT-Tiny"))
    assert "--model must be one of ViT-Pocket-P6, ViT-Pocket" in line and str(weights) in line
