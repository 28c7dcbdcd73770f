"""Figure 4: per-token ranks of an image and a prompt from a saved DRA checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import TINY
from dra.backbones import load_backbone
from dra.checkpoints import save_adapters
from dra.cli import app
from dra.config import DRAConfig
from dra.methods import build_method


def _visualize(tmp_path, config):
    torch.manual_seed(0)
    model = build_method("dra", load_backbone(TINY), ["red circle", "blue square"], config)
    save_adapters(model, tmp_path / "ck")
    Image.new("RGB", (48, 48), (200, 30, 30)).save(tmp_path / "img.png")
    result = CliRunner().invoke(
        app,
        [
            "visualize",
            "--checkpoint",
            str(tmp_path / "ck.safetensors"),
            "--image",
            str(tmp_path / "img.png"),
            "--output",
            str(tmp_path / "vis"),
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_visualize_writes_both_plots_and_order_agreements(tmp_path):
    out = _visualize(tmp_path, DRAConfig(noise_temperature=0.0))
    assert out["classname"] == "red circle" and out["image_block"] == 6 and out["text_block"] == 6
    # Without training noise the "noisy" order is the noiseless one: Spearman exactly 1 in every block.
    assert out["image_order_agreement"] == {"5": 1.0, "6": 1.0}
    assert out["text_order_agreement"] == {"5": 1.0, "6": 1.0}
    for key in ("image_plot", "text_plot"):
        with open(out[key], "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_order_agreement_reports_the_noise_of_the_checkpoints_config(tmp_path):
    """The paper's a + g with tau = 1: Gumbel noise (std 1.3) dwarfs scores of about 1/77, so the 77 prompt
    tokens come out in a nearly random order (Spearman about 0 +- 0.12), far from the noiseless 1."""
    out = _visualize(tmp_path, DRAConfig(noise_temperature=1.0))
    assert all(abs(v) < 0.6 for v in out["text_order_agreement"].values()), out["text_order_agreement"]


def test_visualize_refuses_a_plain_adapter_checkpoint(tmp_path):
    model = build_method("adapter", load_backbone(TINY), ["a", "b"])
    save_adapters(model, tmp_path / "ck")
    Image.new("RGB", (8, 8)).save(tmp_path / "img.png")
    result = CliRunner().invoke(
        app,
        [
            "visualize",
            "--checkpoint",
            str(tmp_path / "ck.safetensors"),
            "--image",
            str(tmp_path / "img.png"),
            "--output",
            str(tmp_path / "vis"),
        ],
    )
    assert result.exit_code == 1 and "only DRA assigns ranks" in result.stderr


# -- Fig. 4 with ground truth --------------------------------------------------------------------------


def _reference_auc(values, positive):
    """Every (positive, negative) pair: 1 if the positive is higher, 1/2 if equal."""
    pos = [v for v, p in zip(values, positive) if p]
    neg = [v for v, p in zip(values, positive) if not p]
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg) / (len(pos) * len(neg))


def test_auc_is_mann_whitney_with_ties_counted_half():
    import numpy as np

    from dra.report import auc

    assert auc([0.1, 0.2, 0.9, 0.8], [False, False, True, True]) == 1.0
    assert auc([0.9, 0.8, 0.1, 0.2], [False, False, True, True]) == 0.0
    assert auc([3, 3, 3, 3], [True, False, True, False]) == 0.5
    assert auc([1, 2, 2, 3], [False, True, False, True]) == 0.875  # pairs: (2>1, 2=2, 3>1, 3>2) -> 3.5 / 4
    assert auc([1.0, 2.0], [True, True]) is None
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 30))
        values = rng.integers(0, 5, n).astype(float)  # many ties, as ranks have
        positive = rng.random(n) < 0.4
        if positive.all() or not positive.any():
            continue
        assert abs(auc(values, positive) - _reference_auc(values, positive)) < 1e-12


def test_object_mask_is_where_the_scene_draws_its_object():
    import numpy as np

    from dra.analysis.ground_truth import patch_labels
    from dra.data.generated import world

    image, _, scene = world.sample(0, 4)  # one large blue cross on ocean water
    assert (scene.count, scene.size, scene.shape, scene.colour) == (1, "large", "cross", "blue")
    mask = world.object_mask(0, 4)
    assert mask.shape == (48, 48) and mask.min() == 0.0 and mask.max() == 1.0
    assert np.array_equal(mask, world.object_mask(0, 4))  # deterministic
    pixels = np.asarray(image, np.float32)
    inside, outside = pixels[mask == 1].mean(0), pixels[mask == 0].mean(0)
    assert inside[2] > 150 and inside[2] - inside[0] > 100  # the object's pixels are blue
    ys, xs = np.nonzero(mask)
    assert 10 <= ys.mean() <= 38 and 5 <= xs.mean() <= 30  # left of centre, as drawn
    assert abs(pixels[mask == 1].mean() - outside.mean()) > 5
    coverage = world.patch_coverage(mask, 6)
    assert np.allclose(coverage, mask.reshape(6, 8, 6, 8).mean((1, 3)))  # 8 px patches
    assert abs(coverage.sum() * 64 - mask.sum()) < 1e-3
    assert abs(world.patch_coverage(mask, 14).sum() * (48 / 14) ** 2 - mask.sum()) < 1e-3  # uneven patches
    labels = patch_labels(0, 4, 6)
    assert [labels.tolist().count(v) for v in (1, 0, -1)] == [5, 24, 7]  # >= half covered, empty, partly
    assert (labels[coverage.reshape(-1) == 0] == 0).all()
    assert world.object_mask(0, 5).sum() != mask.sum()


def test_visualize_scene_reports_both_aucs_on_the_pocket_clip(tmp_path):
    """End to end: a tiny untrained DRA on the packaged pocket CLIP, a pocket scene, both AUCs in [0, 1]."""
    from dra.analysis.ground_truth import prompt_labels

    torch.manual_seed(0)
    backbone = load_backbone("ViT-Pocket-P6", "pocket")
    model = build_method("dra", backbone, ["snow field", "red object"], DRAConfig(start_layer=2, rank=16))
    labels = prompt_labels(backbone, model.template, "snow field")
    assert labels[:8].tolist() == [-1, 0, 0, 0, 0, 1, 1, 0] and labels[8] == -1 and labels[9:].tolist() == [0] * 23
    save_adapters(model, tmp_path / "ck")
    args = ["visualize", "--checkpoint", str(tmp_path / "ck.safetensors"), "--scene", "0:4"]
    result = CliRunner().invoke(app, [*args, "--pretrained", "pocket", "--output", str(tmp_path / "vis")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["image"].startswith("pocket scene 0:4")
    for key, positives, negatives in (("image_object_auc", 11, 43), ("text_class_word_auc", 2, 28)):  # 8x8 patches
        assert set(out[key]) == {"2", "3", "4"}
        for block in out[key].values():
            assert (block["positives"], block["negatives"]) == (positives, negatives)
            assert 0.0 <= block["auc_scores"] <= 1.0 and 0.0 <= block["auc_ranks"] <= 1.0
    both = CliRunner().invoke(app, [*args, "--image", str(tmp_path / "x.png"), "--output", str(tmp_path / "v")])
    assert both.exit_code == 1 and "exactly one of --image FILE, --scene SEED:INDEX" in both.stderr
    bad = CliRunner().invoke(app, ["visualize", "--checkpoint", "ck", "--scene", "0-4"])
    assert bad.exit_code == 1 and "--scene '0-4' is not SEED:INDEX" in bad.stderr


def test_visualize_scenes_averages_the_single_scene_aucs_and_gives_the_untrained_reference(tmp_path, monkeypatch):
    """`--scenes` = the mean over scenes of what `--scene` reports one scene at a time, for each checkpoint and
    for fresh adapters (torch seed = the checkpoint's position); a checkpoint saved from fresh seed-0 adapters is
    its own reference in position 0, not in position 1; the summary is over the checkpoints. The four models
    share one loaded backbone."""
    import numpy as np

    import dra.backbones
    import dra.checkpoints.rebuild
    from dra.analysis.token_ranks import token_ranks
    from dra.report.stats import summarise

    torch.manual_seed(0)
    backbone = load_backbone("ViT-Pocket-P6", "pocket")
    model = build_method("dra", backbone, ["snow field", "red object"], DRAConfig(start_layer=2, rank=16))
    save_adapters(model, tmp_path / "ck")
    ck = str(tmp_path / "ck.safetensors")
    loads = []

    def counted(*a, **kw):
        loads.append(a)
        return load_backbone(*a, **kw)

    monkeypatch.setattr(dra.backbones, "load_backbone", counted)
    monkeypatch.setattr(dra.checkpoints.rebuild, "load_backbone", counted)
    args = ["visualize", "--checkpoint", ck, "--checkpoint", ck, "--pretrained", "pocket"]
    result = CliRunner().invoke(app, [*args, "--scenes", "0:3-6"])
    assert result.exit_code == 0, result.output
    assert loads == [("ViT-Pocket-P6", "pocket", False)]  # once, for 2 checkpoints x (trained, fresh)
    from dra.checkpoints import CheckpointError, load_model

    with pytest.raises(CheckpointError, match="is a ViT-Pocket-P6 model, not ViT-Pocket: load its own backbone"):
        load_model(ck, backbone=load_backbone("ViT-Pocket", None))
    out = json.loads(result.stdout)
    first, second = out["checkpoints"]
    assert first["trained"] == first["untrained"] == second["trained"] != second["untrained"]
    summary = first["trained"]
    assert out["scenes"] == summary["scenes"] == 4 and summary["classnames"] == ["snow field", "red object"]
    singles = [token_ranks(model, None, None, tmp_path / "v", scene=(0, i)) for i in range(3, 7)]
    for block in ("2", "3", "4"):
        values = [s["image_object_auc"][int(block)]["auc_scores"] for s in singles]
        values = [v for v in values if v is not None]
        assert summary["image_object_auc"][block]["n"] == len(values) >= 3
        assert abs(summary["image_object_auc"][block]["mean"] - np.mean(values)) < 1e-9
        assert abs(summary["image_object_auc"][block]["std"] - np.std(values, ddof=1)) < 1e-9
        words = [token_ranks(model, None, c, tmp_path / "v", scene=(0, 3)) for c in ("snow field", "red object")]
        text = [w["text_class_word_auc"][int(block)]["auc_scores"] for w in words]
        assert summary["text_class_word_auc"][block]["n"] == 2
        assert abs(summary["text_class_word_auc"][block]["mean"] - np.mean(text)) < 1e-9
        over = out["summary"]["image_object_auc"][block]
        trained = [c["trained"]["image_object_auc"][block]["mean"] for c in out["checkpoints"]]
        untrained = [c["untrained"]["image_object_auc"][block]["mean"] for c in out["checkpoints"]]
        assert over["trained"] == summarise(trained).as_dict() and over["untrained"] == summarise(untrained).as_dict()
        assert over["trained_minus_untrained"] == summarise([t - u for t, u in zip(trained, untrained)]).as_dict()
    both = CliRunner().invoke(app, [*args, "--scenes", "0:1-2", "--scene", "0:4"])
    assert both.exit_code == 1 and "exactly one of --image FILE, --scene" in both.stderr
    bad = CliRunner().invoke(app, [*args, "--scenes", "0:5-2"])
    assert bad.exit_code == 1 and "--scenes '0:5-2': need 0 <= FIRST <= LAST" in bad.stderr
    two = CliRunner().invoke(app, [*args, "--scene", "0:4"])
    assert two.exit_code == 1 and "several only with --scenes" in two.stderr
