"""Figure 4: per-token ranks of an image and a prompt from a saved DRA checkpoint."""

from __future__ import annotations

import json

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
