"""Figure 4: per-token ranks of an image and a prompt from a saved DRA checkpoint."""
from __future__ import annotations

import json

import torch
from PIL import Image
from typer.testing import CliRunner

from dra.backbones import load_backbone
from dra.cli import app
from dra.engine.checkpoint import save_adapters
from dra.methods import build_method

from conftest import TINY


def test_visualize_writes_both_plots_and_order_agreements(tmp_path):
    torch.manual_seed(0)
    model = build_method("dra", load_backbone(TINY), ["red circle", "blue square"])
    save_adapters(model, tmp_path / "ck")
    Image.new("RGB", (48, 48), (200, 30, 30)).save(tmp_path / "img.png")
    result = CliRunner().invoke(app, ["visualize", "--checkpoint", str(tmp_path / "ck.safetensors"), "--image",
                                      str(tmp_path / "img.png"), "--output", str(tmp_path / "vis")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["classname"] == "red circle" and out["image_block"] == 6 and out["text_block"] == 6
    assert set(out["image_order_agreement"]) == {"5", "6"}
    assert all(-1.0 <= v <= 1.0 for v in out["text_order_agreement"].values())
    for key in ("image_plot", "text_plot"):
        with open(out[key], "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_visualize_refuses_a_plain_adapter_checkpoint(tmp_path):
    model = build_method("adapter", load_backbone(TINY), ["a", "b"])
    save_adapters(model, tmp_path / "ck")
    Image.new("RGB", (8, 8)).save(tmp_path / "img.png")
    result = CliRunner().invoke(app, ["visualize", "--checkpoint", str(tmp_path / "ck.safetensors"), "--image",
                                      str(tmp_path / "img.png"), "--output", str(tmp_path / "vis")])
    assert result.exit_code == 1 and "only DRA assigns ranks" in result.stderr
