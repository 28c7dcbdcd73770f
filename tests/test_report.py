"""dra.report: metrics, the paper's tables, renderers, plots and the token-rank helpers."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import torch

from dra.data import CLIP_MEAN, CLIP_STD
from dra.report import (
    Table,
    ablation_table,
    base2new_table,
    cross_dataset_table,
    domain_gen_table,
    efficiency_table,
    harmonic_mean,
    mean_std,
    write,
)
from dra.report.plots import plot_ablation, plot_base2new
from dra.report.token_ranks import (
    image_rank_map,
    order_agreement,
    plot_image_ranks,
    plot_text_ranks,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _b2n(dataset, seed, base, new):
    return {"dataset": dataset, "seed": seed, "base": base, "new": new}


def _md_rows(md: str) -> list[list[str]]:
    """The cells of a markdown table, header first, separator dropped."""
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return [rows[0]] + rows[2:]


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


# ------------------------------------------------------------------------------------------
# metrics
# ------------------------------------------------------------------------------------------


def test_harmonic_mean():
    assert harmonic_mean(80.0, 80.0) == pytest.approx(80.0)
    assert harmonic_mean(60.0, 90.0) == pytest.approx(72.0)  # 2*60*90/150
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(50.0, 0.0) == 0.0
    assert harmonic_mean(30.0, 70.0) == pytest.approx(harmonic_mean(70.0, 30.0))
    # paper Table 1 rows: MMA ImageNet, DRA average, CLIP average
    assert round(harmonic_mean(77.31, 71.00), 2) == 74.02
    assert round(harmonic_mean(83.06, 77.75), 2) == 80.32
    assert round(harmonic_mean(69.34, 74.22), 2) == 71.70
    with pytest.raises(ValueError):
        harmonic_mean(-1.0, 50.0)


def test_mean_std_sample():
    m, s = mean_std([70.0, 72.0, 74.0])
    assert m == pytest.approx(72.0) and s == pytest.approx(2.0)  # ddof=1
    assert mean_std([81.5]) == (81.5, 0.0)


# ------------------------------------------------------------------------------------------
# Table 1
# ------------------------------------------------------------------------------------------


def test_base2new_seed_mean_std_and_hm_of_means():
    recs = [_b2n("eurosat", s, b, n) for s, b, n in [(1, 90.0, 60.0), (2, 92.0, 70.0), (3, 94.0, 80.0)]]
    t = base2new_table(recs)
    assert t.columns == ["Dataset", "Base", "New", "HM"]
    assert t.labels == ["EuroSAT", "Average"]
    assert t.cell("EuroSAT", "Base") == pytest.approx(92.0)
    assert t.cell("EuroSAT", "New") == pytest.approx(70.0)
    assert t.std("EuroSAT", "Base") == pytest.approx(2.0)
    assert t.std("EuroSAT", "New") == pytest.approx(10.0)
    # HM of the mean Base and mean New, not the mean of per-seed HMs
    assert t.cell("EuroSAT", "HM") == pytest.approx(2 * 92 * 70 / 162)
    per_seed_hm = np.mean([harmonic_mean(b, n) for b, n in [(90, 60), (92, 70), (94, 80)]])
    assert t.cell("EuroSAT", "HM") != pytest.approx(per_seed_hm)
    assert t.n_seeds[0] == 3


def test_base2new_average_is_hm_of_averages_mma_example():
    # per-dataset means: (96.0, 60.0) and (70.4, 93.6) -> average Base 83.20, New 76.80
    recs = [
        _b2n("dtd", 1, 95.0, 59.0),
        _b2n("dtd", 2, 97.0, 61.0),
        _b2n("dtd", 3, 96.0, 60.0),
        _b2n("ucf101", 1, 70.4, 93.0),
        _b2n("ucf101", 2, 70.4, 94.2),
    ]
    t = base2new_table(recs)
    avg = t.rows[-1]
    assert avg[0] == "Average"
    assert avg[1] == pytest.approx(83.20) and avg[2] == pytest.approx(76.80)
    assert round(avg[3], 2) == 79.87  # 2*83.20*76.80/160.0
    assert avg[3] == pytest.approx(2 * 83.2 * 76.8 / 160.0)
    mean_of_hms = (t.cell("DTD", "HM") + t.cell("UCF101", "HM")) / 2
    assert round(mean_of_hms, 2) != 79.87  # the wrong convention gives 77.10
    assert t.stds[-1] == [None, None, None, None]


def test_base2new_row_order_names_and_duplicates():
    recs = [
        _b2n("eurosat", 1, 80, 70),
        _b2n("my_data", 1, 50, 50),
        _b2n("imagenet", 1, 77, 71),
        _b2n("eurosat", 2, 82, 72),
        _b2n("oxford_flowers", 1, 97, 76),
        _b2n("fgvc_aircraft", 1, 40, 36),
    ]
    t = base2new_table(recs)
    assert t.labels == ["EuroSAT", "my_data", "ImageNet", "Flowers102", "FGVCAircraft", "Average"]
    assert base2new_table(recs, average=False).labels[-1] == "FGVCAircraft"
    with pytest.raises(ValueError, match="duplicate"):
        base2new_table(recs + [_b2n("eurosat", 1, 81, 71)])
    with pytest.raises(ValueError):
        base2new_table([{"dataset": "dtd", "seed": 1, "base": 80.0}])


# ------------------------------------------------------------------------------------------
# renderers and files
# ------------------------------------------------------------------------------------------


def _three_seed_table():
    return base2new_table(
        [
            _b2n("dtd", 1, 80.0, 60.0),
            _b2n("dtd", 2, 82.0, 62.0),
            _b2n("dtd", 3, 84.0, 64.0),
            _b2n("eurosat", 1, 90.125, 70.5),
        ]
    )


def test_markdown_and_terminal():
    t = _three_seed_table()
    rows = _md_rows(t.to_markdown())
    assert rows[0] == ["Dataset", "Base", "New", "HM"]
    assert rows[1] == ["DTD", "82.00 ± 2.00", "62.00 ± 2.00", f"{harmonic_mean(82, 62):.2f}"]
    # a single-seed row shows no "± 0.00"
    assert rows[2] == ["EuroSAT", "90.12", "70.50", f"{harmonic_mean(90.125, 70.5):.2f}"]
    assert rows[3][0] == "Average" and rows[3][1] == f"{(82 + 90.125) / 2:.2f}"
    assert "±" not in "".join(rows[3])
    term = t.to_terminal()
    lines = term.splitlines()
    assert lines[0] == t.title
    assert lines[1].split() == ["Dataset", "Base", "New", "HM"]
    assert "82.00 ± 2.00" in lines[3] and lines[3].startswith("DTD")
    assert "±" not in t.to_markdown(std=False)
    assert t.to_rich().row_count == 3


def test_csv_and_json_full_precision():
    t = _three_seed_table()
    recs = t.to_json()
    assert [r["Dataset"] for r in recs] == ["DTD", "EuroSAT", "Average"]
    assert list(recs[0]) == ["Dataset", "Base", "Base_std", "New", "New_std", "HM", "n_seeds"]
    assert recs[1]["Base"] == 90.125 and isinstance(recs[1]["Base"], float)  # not rounded
    assert recs[0]["Base_std"] == pytest.approx(2.0) and recs[1]["Base_std"] == 0.0
    assert recs[2]["Base_std"] is None and recs[0]["n_seeds"] == 3
    json.dumps(recs)  # serialisable as is
    parsed = list(csv.DictReader(io.StringIO(t.to_csv())))
    assert [p["Dataset"] for p in parsed] == ["DTD", "EuroSAT", "Average"]
    for p, r in zip(parsed, recs):
        assert float(p["HM"]) == r["HM"]  # full precision round trip
    assert parsed[2]["Base_std"] == ""


def test_write_atomic_files(tmp_path):
    t = _three_seed_table()
    out = tmp_path / "results" / "b2n"
    paths = write(t, out, "table1")
    assert {p.name for p in out.iterdir()} == {"table1.md", "table1.csv", "table1.json"}
    assert paths["md"].read_text() == t.to_markdown()
    assert paths["csv"].read_text() == t.to_csv()
    stored = json.loads(paths["json"].read_text())
    assert stored["title"] == t.title and stored["columns"] == t.columns
    assert stored["rows"] == t.to_json()
    t.write(out, "table1")  # overwrite in place
    assert len(list(out.iterdir())) == 3


def test_table_validates_shape():
    with pytest.raises(ValueError):
        Table(title="x", columns=["a", "b"], rows=[["r", 1.0, 2.0]])


# ------------------------------------------------------------------------------------------
# Tables 2, 3, 6, ablations
# ------------------------------------------------------------------------------------------

# paper Table 2, DRA row
_T2_DRA = {
    "imagenet": 71.49,
    "caltech101": 94.23,
    "oxford_pets": 90.53,
    "stanford_cars": 66.65,
    "oxford_flowers": 72.36,
    "food101": 86.44,
    "fgvc_aircraft": 25.28,
    "sun397": 68.29,
    "dtd": 45.94,
    "eurosat": 47.63,
    "ucf101": 69.71,
}


def test_cross_dataset_table():
    ids = list(_T2_DRA)[::-1]  # records in reverse paper order
    recs = [{"dataset": d, "seed": 1, "accuracy": _T2_DRA[d]} for d in ids]
    # a second seed for EuroSAT moves its mean to 47.63 + 1
    recs = [r if r["dataset"] != "eurosat" else {**r, "accuracy": 46.63} for r in recs]
    recs.append({"dataset": "eurosat", "seed": 2, "accuracy": 50.63})
    t = cross_dataset_table(recs)
    assert t.columns == [
        "Method",
        "ImageNet",
        "Caltech101",
        "OxfordPets",
        "StanfordCars",
        "Flowers102",
        "Food101",
        "FGVCAircraft",
        "SUN397",
        "DTD",
        "EuroSAT",
        "UCF101",
        "Average",
    ]
    assert t.labels == ["DRA"]
    assert t.cell("DRA", "EuroSAT") == pytest.approx(48.63)
    assert t.std("DRA", "EuroSAT") == pytest.approx(math.sqrt(8.0))
    # Average over the 10 targets only: paper 66.71 (+0.1 for the moved EuroSAT mean)
    assert t.cell("DRA", "Average") == pytest.approx(66.706 + 0.1)
    recs_paper = [{"dataset": d, "seed": 1, "accuracy": v} for d, v in _T2_DRA.items()]
    assert round(cross_dataset_table(recs_paper).cell("DRA", "Average"), 2) == 66.71


def test_cross_dataset_methods_and_missing():
    recs = [
        {"method": "DRA", "dataset": "imagenet", "seed": 1, "accuracy": 70.0},
        {"method": "DRA", "dataset": "dtd", "seed": 1, "accuracy": 40.0},
        {"method": "DRA", "dataset": "caltech101", "seed": 1, "accuracy": 90.0},
        {"method": "CoOp", "dataset": "caltech101", "seed": 1, "accuracy": 80.0},
    ]
    t = cross_dataset_table(recs)
    assert t.columns == ["Method", "ImageNet", "Caltech101", "DTD", "Average"]
    assert t.labels == ["DRA", "CoOp"]
    assert t.cell("DRA", "Average") == pytest.approx(65.0)
    assert t.cell("CoOp", "ImageNet") is None and t.cell("CoOp", "Average") == pytest.approx(80.0)
    assert _md_rows(t.to_markdown())[2][1] == "-"


def test_domain_gen_table_clip_average():
    clip = {"imagenet": 66.73, "imagenetv2": 60.83, "imagenet_sketch": 46.15, "imagenet_a": 47.77, "imagenet_r": 73.96}
    recs = [{"dataset": d, "seed": 1, "accuracy": v, "method": "CLIP"} for d, v in clip.items()]
    t = domain_gen_table(recs[::-1])
    assert t.columns == ["Method", "ImageNet", "-V2", "-S", "-A", "-R", "Avg"]
    assert t.cell("CLIP", "Avg") == pytest.approx((60.83 + 46.15 + 47.77 + 73.96) / 4)
    assert round(t.cell("CLIP", "Avg"), 2) == 57.18
    assert _md_rows(t.to_markdown())[1] == ["CLIP", "66.73", "60.83", "46.15", "47.77", "73.96", "57.18"]
    # means over seeds
    two = recs + [{**recs[1], "seed": 2, "accuracy": 62.83}]
    assert domain_gen_table(two).cell("CLIP", "-V2") == pytest.approx(61.83)
    with pytest.raises(ValueError):
        domain_gen_table(recs + [{"dataset": "dtd", "seed": 1, "accuracy": 1.0}])


def test_efficiency_table_ratios():
    rows = [
        {
            "method": "zeroshot",
            "trainable_params": 0,
            "train_images_per_s": None,
            "infer_images_per_s": 1000.0,
            "peak_memory_mb": 2000.0,
        },
        {
            "method": "dra",
            "trainable_params": 716800,
            "train_images_per_s": 138.73,
            "infer_images_per_s": 642.90,
            "peak_memory_mb": 5000.0,
            "epochs": 5,
        },
    ]
    t = efficiency_table(rows)
    assert t.columns == [
        "Method",
        "Trainable params",
        "Epochs",
        "Train (img/s)",
        "Inference (img/s)",
        "Peak memory (MB)",
        "Train ×ZS",
        "Inference ×ZS",
        "Memory ×ZS",
    ]
    assert t.cell("dra", "Inference ×ZS") == pytest.approx(0.6429)
    assert t.cell("dra", "Memory ×ZS") == pytest.approx(2.5)
    assert t.cell("zeroshot", "Inference ×ZS") == pytest.approx(1.0)
    assert t.cell("dra", "Train ×ZS") is None
    md = _md_rows(t.to_markdown())
    assert md[2][:2] == ["dra", "716,800"] and md[2][7] == "0.64"
    assert t.to_json()[1]["Trainable params"] == 716800
    no_ref = efficiency_table(rows[1:])
    assert "Memory ×ZS" not in no_ref.columns and "Epochs" in no_ref.columns


def test_ablation_table_sorted_means():
    recs = [{"r": r, "seed": s, "base": 80 + r / 32 + s, "new": 75 + s} for r in (64, 8, 32) for s in (1, 2)]
    t = ablation_table(recs, "r")
    assert t.labels == [8, 32, 64]
    assert t.cell(32, "Base") == pytest.approx(82.5) and t.cell(32, "New") == pytest.approx(76.5)
    assert t.cell(32, "HM") == pytest.approx(harmonic_mean(82.5, 76.5))
    ratios = [
        {"ratios": [1.0, 0.5], "seed": 1, "base": 83.18, "new": 77.41},
        {"ratios": [1.0, 0.8, 0.6, 0.4], "seed": 1, "base": 83.06, "new": 77.75},
    ]
    t2 = ablation_table(ratios, "ratios")
    assert t2.labels == [[1.0, 0.5], [1.0, 0.8, 0.6, 0.4]]
    assert round(t2.cell([1.0, 0.8, 0.6, 0.4], "HM"), 2) == 80.32


# ------------------------------------------------------------------------------------------
# token ranks
# ------------------------------------------------------------------------------------------


def test_image_rank_map_placement():
    ranks = np.array([99, 32, 25, 19, 12, 32, 25, 19, 12, 32])  # CLS + 3x3 patches
    m = image_rank_map(ranks, 3)
    assert m.shape == (3, 3)
    np.testing.assert_array_equal(m, [[32, 25, 19], [12, 32, 25], [19, 12, 32]])
    np.testing.assert_array_equal(image_rank_map(torch.tensor(ranks)), m)  # grid inferred
    batch = image_rank_map(torch.stack([torch.tensor(ranks), torch.arange(10)]), 3)
    assert batch.shape == (2, 3, 3) and batch[1, 2, 0] == 7  # token 7 = row 2, col 0
    with pytest.raises(ValueError):
        image_rank_map(np.arange(9), 3)


def test_order_agreement_spearman():
    s = torch.tensor([0.5, 0.1, 0.3, 0.05, 0.05 + 1e-3])
    assert order_agreement(s, s * 3 + 1) == pytest.approx(1.0)
    assert order_agreement(s, -s) == pytest.approx(-1.0)
    # swapping two adjacent tokens of 3: d = (1, 1, 0) -> 1 - 6*2/(3*8) = 0.5
    assert order_agreement([3.0, 2.0, 1.0], [2.0, 3.0, 1.0]) == pytest.approx(0.5)
    # batch: mean of per-sample values
    a = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    b = np.array([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    assert order_agreement(a, b) == pytest.approx(0.0)
    # equals the Pearson correlation of the ranks
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=20), rng.normal(size=20)
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    assert order_agreement(x, y) == pytest.approx(np.corrcoef(rx, ry)[0, 1])
    with pytest.raises(ValueError):
        order_agreement(a, b[:, :3])


# ------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------


def test_plots_write_pngs(tmp_path):
    t = _three_seed_table()
    assert plot_base2new(t, tmp_path / "b2n.png") == tmp_path / "b2n.png"
    _assert_png(tmp_path / "b2n.png")
    recs = [_b2n("dtd", 1, 80.0, 60.0), _b2n("eurosat", 1, 90.0, 70.0)]
    _assert_png(plot_base2new(recs, tmp_path / "sub" / "b2n_records.png"))
    abl = [{"h": h, "seed": 1, "base": 80 + h / 10, "new": 77 - abs(h - 5) / 5} for h in (1, 3, 5, 7, 9)]
    _assert_png(plot_ablation(abl, "h", tmp_path / "h.png"))
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_token_rank_plots(tmp_path):
    ranks = torch.tensor([32] + [32, 25, 19, 12] * 4)  # CLS + 4x4 patches
    img = torch.rand(3, 32, 32)
    normed = (img - torch.tensor(CLIP_MEAN)[:, None, None]) / torch.tensor(CLIP_STD)[:, None, None]
    _assert_png(plot_image_ranks(normed, ranks, tmp_path / "img_chw.png", mean="clip", std="clip"))
    hwc = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    _assert_png(plot_image_ranks(hwc, ranks.numpy()[None], tmp_path / "img_hwc.png"))
    tokens = ["<SOS>", "a", "photo", "of", "a", "cat", ".", "<EOS>"]
    scores = torch.tensor([0.75, 0.02, 0.05, 0.01, 0.02, 0.08, 0.03, 0.04] + [0.0] * 69)
    tranks = torch.tensor([32, 12, 25, 12, 12, 32, 19, 25] + [12] * 69)
    _assert_png(plot_text_ranks(tokens, tranks, scores, tmp_path / "text.png"))
    with pytest.raises(ValueError):
        plot_text_ranks(tokens, tranks[:3], scores, tmp_path / "bad.png")
