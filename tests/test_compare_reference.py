"""`dra compare --reference METHOD`: paired differences over fake result files, checked against a plain
bootstrap; the refusals (a reference not compared) are one error line before any run."""

from __future__ import annotations

import json

from conftest import TINY
from safety_helpers import invoke, one_error_line
from test_stats import reference_interval

QUICK = [
    "train.epochs=1",
    "train.warmup_epochs=0",
    "train.batch_size=4",
    "train.num_workers=0",
    "eval.num_workers=0",
    "eval.batch_size=50",
    "test_per_class=2",
    "tip_adapter.augment_views=1",
]
FAKE = {  # (method, seed): (base, new), written over the runs' results
    ("zeroshot", 1): (50.0, 40.0),
    ("zeroshot", 2): (52.0, 44.0),
    ("zeroshot", 3): (49.0, 41.0),
    ("tip_adapter", 1): (58.0, 39.0),
    ("tip_adapter", 2): (57.0, 46.0),
    ("tip_adapter", 3): (60.0, 38.0),
}


def compare(out, *extra):
    return invoke(
        "compare", "--methods", "zeroshot", "tip_adapter", "--datasets", "shapes", "--seeds", "1", "2", "3",
        "--model", TINY, "--pretrained", "none", "--shots", "2", "--output", out, *QUICK, *extra,
    )  # fmt: skip


def test_compare_reference_pairs_the_seeds_of_fake_results(tmp_path):
    first = compare(tmp_path)  # the runs (no training: zero-shot and Tip-Adapter's cache)
    assert first.exit_code == 0, first.output
    for (method, seed), (base, new) in FAKE.items():
        (path,) = (tmp_path / "base2new").glob(f"{method}-*/shapes/seed{seed}/result-test_per_class2.json")
        result = json.loads(path.read_text())
        path.write_text(json.dumps({**result, "base": base, "new": new}))  # reused as they are
    out = compare(tmp_path, "--reference", "zeroshot")
    assert out.exit_code == 0, out.output
    folder = tmp_path / "compare" / "base2new"
    rows = json.loads((folder / "paired.json").read_text())["rows"]
    assert [(r["Method"], r["Dataset"]) for r in rows] == [("tip_adapter", "Shapes")]
    row = rows[0]
    seeds = (1, 2, 3)
    base = [FAKE[("tip_adapter", s)][0] - FAKE[("zeroshot", s)][0] for s in seeds]  # 8, 5, 11
    new = [FAKE[("tip_adapter", s)][1] - FAKE[("zeroshot", s)][1] for s in seeds]  # -1, 2, -3
    assert row["Δ Base"] == 8.0 and row["Δ New"] == -2 / 3 and row["Seeds"] == 3
    base_low, base_high = reference_interval(base)
    assert abs(row["Δ Base_ci95_low"] - base_low) + abs(row["Δ Base_ci95_high"] - base_high) < 1e-9 and base_low > 0
    low, high = reference_interval(new)
    assert abs(row["Δ New_ci95_low"] - low) + abs(row["Δ New_ci95_high"] - high) < 1e-9
    assert row["Base resolved"] is True and row["New resolved"] is False and low < 0 < high
    csv_text = (folder / "paired.csv").read_text()
    assert "Δ Base_ci95_low" in csv_text.splitlines()[0] and "True" in csv_text
    assert "Paired differences to zeroshot" in (folder / "paired.md").read_text()
    assert f"8.00 ± 3.00 [{base_low:.2f}, {base_high:.2f}]" in out.stdout  # the terminal table: std of 8, 5, 11
    table = {r["Method"]: r for r in json.loads((folder / "compare.json").read_text())["rows"]}
    assert table["tip_adapter"]["Shapes Base"] == 175 / 3
    assert table["tip_adapter"]["Shapes Base_ci95_low"] < 175 / 3 < table["tip_adapter"]["Shapes Base_ci95_high"]

    # a method run on other seeds than the reference (a settings file's method_overrides): one error line
    config = tmp_path / "mismatch.yaml"
    config.write_text("protocol: base2new\nseeds: [1, 2, 3]\nmethod_overrides:\n  tip_adapter: {seeds: [1, 2]}\n")
    line = one_error_line(
        invoke(
            "compare",
            "--methods",
            "zeroshot",
            "tip_adapter",
            "--datasets",
            "shapes",
            "--config",
            config,
            "--model",
            TINY,
            "--pretrained",
            "none",
            "--shots",
            "2",
            "--output",
            tmp_path,
            *QUICK,
            "--reference",
            "zeroshot",
        )  # fmt: skip
    )
    assert line == (
        "error: --reference zeroshot: tip_adapter and zeroshot were not run on the same datasets and seeds "
        "(tip_adapter lacks shapes seed 3); run both on the same --datasets and --seeds"
    )


def test_a_reference_that_is_not_compared_is_one_error_line(tmp_path):
    line = one_error_line(compare(tmp_path / "o", "--reference", "dra"))
    assert (
        line == "error: --reference dra is not among the compared methods (zeroshot, tip_adapter); add it to --methods"
    )
    assert not (tmp_path / "o").exists()
