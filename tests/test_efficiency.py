"""`measure_methods` (paper Table 6 on this device) on the tiny test model: keys, types, counts, errors.

No timing thresholds here: speed depends on the machine (benchmarks/ holds the measured figures).
"""

from __future__ import annotations

import json
import math

import pytest

from conftest import TINY
from dra.efficiency.measure import measure_methods

KEYS = {"method", "trainable_params", "train_images_per_s", "infer_images_per_s", "peak_memory_mb"}


@pytest.fixture(scope="module")
def rows():
    return measure_methods(
        ["dra", "adapter", "zeroshot"], model=TINY, batch_size=2, steps=1, warmup=1, device="cpu", num_classes=3
    )


def test_one_row_per_method_in_order_with_the_table6_keys(rows):
    assert [r["method"] for r in rows] == ["dra", "adapter", "zeroshot"]
    for r in rows:
        assert KEYS <= set(r)
        assert isinstance(r["trainable_params"], int)
        assert isinstance(r["infer_images_per_s"], float)
        assert r["infer_images_per_s"] > 0 and math.isfinite(r["infer_images_per_s"])
        assert r["device"] == "cpu" and r["precision"] == "fp32" and r["batch_size"] == 2
    json.dumps(rows)  # what `dra efficiency --json` prints


def test_trainable_params_are_the_exact_counts_of_the_tiny_model(rows):
    """Counted by hand for ViT-Tiny-16-test: 6 layers, adapters in blocks 5 and 6 (2 per encoder), r = 32,
    image width 64, text width 48. A block: d*r + r (down), k x (r*r + r) for its r x r Linears, r*d + d (up).

    DRA (W_t, W_c, W_p: k = 3, 3 x 1,056 = 3,168):
      image 2,048 + 32 + 3,168 + 2,048 + 64 = 7,360;  text 1,536 + 32 + 3,168 + 1,536 + 48 = 6,320
      2 x 7,360 + 2 x 6,320 = 14,720 + 12,640 = 27,360
    plain adapter (W_p only: k = 1): image 5,248, text 4,208 -> 10,496 + 8,416 = 18,912
    """
    by = {r["method"]: r["trainable_params"] for r in rows}
    assert by == {"dra": 27_360, "adapter": 18_912, "zeroshot": 0}


def test_training_throughput_is_positive_and_undefined_for_zero_shot(rows):
    by = {r["method"]: r for r in rows}
    assert by["zeroshot"]["train_images_per_s"] is None
    assert by["zeroshot"]["train_peak_memory_mb"] is None
    for name in ("dra", "adapter"):
        v = by[name]["train_images_per_s"]
        assert isinstance(v, float) and v > 0 and math.isfinite(v)


def test_peak_memory_is_positive_and_covers_both_phases(rows):
    for r in rows:
        if r["peak_memory_mb"] is None:  # no /proc/self/statm on this system
            continue
        assert r["peak_memory_mb"] > 0
        phases = [m for m in (r["train_peak_memory_mb"], r["infer_peak_memory_mb"]) if m is not None]
        assert r["peak_memory_mb"] == max(phases)


def test_a_single_method_and_the_report_table():
    from dra.report import efficiency_table

    rows = measure_methods(["adapter"], model=TINY, batch_size=1, steps=1, warmup=0, device="cpu")
    assert [r["method"] for r in rows] == ["adapter"]
    assert "adapter" in efficiency_table(rows).to_terminal()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"methods": ["dra", "nosuch"]}, "unknown method"),
        ({"methods": []}, "no method"),
        ({"methods": ["dra"], "model": "ViT-Nope-99"}, "unknown model"),
        ({"methods": ["dra"], "batch_size": 0}, "batch_size"),
        ({"methods": ["dra"], "precision": "fp8"}, "precision"),
        ({"methods": ["dra"], "device": "tpu"}, "device"),
    ],
)
def test_bad_arguments_are_one_clear_value_error(kwargs, match):
    kwargs = {"model": TINY, "steps": 1, "warmup": 0, **kwargs}
    methods = kwargs.pop("methods")
    with pytest.raises(ValueError, match=match):
        measure_methods(methods, **kwargs)


def test_cli_and_script_share_one_option_list(tmp_path, capsys):
    """`dra efficiency` and benchmarks/efficiency.py are both `dra.cli.efficiency.main`: same options, defaults."""
    from pathlib import Path

    from typer.testing import CliRunner

    from dra.cli import app, expand_variadic
    from dra.cli.efficiency import main, parser

    script = (Path(__file__).resolve().parents[1] / "benchmarks" / "efficiency.py").read_text()
    assert "from dra.cli.efficiency import main" in script
    defaults = vars(parser().parse_args([]))
    assert defaults["steps"] == 3 and defaults["model"] == "ViT-B-16" and defaults["batch_size"] == 16
    args = [
        "--model",
        TINY,
        "--methods",
        "adapter",
        "zeroshot",
        "--num-classes",
        "2",
        "3",
        "--batch-size",
        "1",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--device",
        "cpu",
        "--json",
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(app, expand_variadic(["efficiency", *args]))
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout[result.stdout.index("{") :])
    assert [(r["method"], r["num_classes"]) for r in record["rows"]] == [
        ("adapter", 2),
        ("zeroshot", 2),
        ("adapter", 3),
        ("zeroshot", 3),
    ]
    assert record["rows"][0]["train_x_zs_infer"] > 0
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".md"]
    assert main(["--model", "ViT-Nope-99", "--steps", "1"]) == 1  # one error line, exit status 1
    assert "error:" in capsys.readouterr().err
