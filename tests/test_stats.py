"""dra.report.stats against a plain python/numpy reference; intervals in the tables; the paired table."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from dra.report import stats
from dra.report.paired import paired_table
from dra.report.paper_tables import base2new_table, method_transfer_table


def reference_interval(values, resamples=10_000, seed=0, level=0.95):
    """The percentile bootstrap written out: the same index draw, python means, linear percentiles."""
    index = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values))).tolist()
    means = sorted(sum(values[i] for i in row) / len(values) for row in index)

    def percentile(q):
        h = (resamples - 1) * q
        lo = math.floor(h)
        return means[lo] + (h - lo) * (means[min(lo + 1, resamples - 1)] - means[lo])

    return percentile((1 - level) / 2), percentile((1 + level) / 2)


@pytest.mark.parametrize("values", [[1.0, 2.0], [80.0, 82.0, 84.0], [3.5, -1.0, 0.25, 7.0, 2.0], [0.0, 0.0, 100.0]])
def test_mean_std_and_interval_match_the_reference(values):
    assert stats.mean(values) == pytest.approx(statistics.mean(values), abs=1e-12)
    assert stats.std(values) == pytest.approx(statistics.stdev(values), abs=1e-12)  # ddof=1
    low, high = stats.bootstrap_interval(values)
    ref_low, ref_high = reference_interval(values)
    assert low == pytest.approx(ref_low, abs=1e-9) and high == pytest.approx(ref_high, abs=1e-9)
    assert min(values) <= low <= stats.mean(values) <= high <= max(values)
    assert stats.bootstrap_interval(values) == (low, high)  # deterministic
    s = stats.summarise(values)
    assert (s.n, s.low, s.high, s.note) == (len(values), low, high, "")


def test_two_values_span_them_and_another_seed_moves_a_wide_interval():
    assert stats.bootstrap_interval([1.0, 2.0]) == (1.0, 2.0)  # the means 1, 1.5, 2: the 2.5/97.5 % are the ends
    values = [0.0, 10.0, 3.0, 7.0, 1.0, 9.0]
    assert stats.bootstrap_interval(values, seed=1) != stats.bootstrap_interval(values)
    assert stats.bootstrap_interval(values, seed=1) == pytest.approx(reference_interval(values, seed=1), abs=1e-9)


def test_degenerate_cases_are_exact():
    assert stats.bootstrap_interval([0.1, 0.1, 0.1]) == (0.1, 0.1)  # zero width, at the value exactly
    s = stats.summarise([-2.5] * 4)
    assert (s.mean, s.std, s.interval, s.resolved) == (-2.5, 0.0, (-2.5, -2.5), True)
    assert not stats.summarise([0.0, 0.0]).resolved  # the zero-width interval at 0 does not exclude it
    one = stats.summarise([3.0])
    assert (one.mean, one.std, one.interval, one.resolved) == (3.0, None, None, False)
    assert one.note == stats.NO_INTERVAL and one.as_dict()["note"] == "one value: no std and no interval"
    assert stats.bootstrap_interval([]) is None and stats.std([1.0]) is None
    with pytest.raises(ValueError, match="empty"):
        stats.mean([])


def _b2n(dataset, seed, base, new):
    return {"dataset": dataset, "seed": seed, "base": base, "new": new}


def test_paired_differences_per_dataset_and_average_by_seed():
    mine = [_b2n("a", s, 70.0 + s, 60.0 + 2 * s) for s in (1, 2, 3, 4)] + [
        _b2n("b", s, 50.0, 40.0 - s) for s in (1, 2, 3, 4)
    ]
    ref = [_b2n("a", s, 70.0, 60.0 + s * s) for s in (1, 2, 3, 4)] + [_b2n("b", s, 50.0, 40.0) for s in (1, 2, 3, 4)]
    out = stats.paired_differences(mine, ref, {"Base": lambda rs: stats.mean(r["base"] for r in rs)})
    assert list(out) == ["a", "b", "Average"]
    assert out["a"]["Base"].mean == 2.5 and out["a"]["Base"].interval == pytest.approx(
        reference_interval([1.0, 2.0, 3.0, 4.0])
    )
    assert out["b"]["Base"].interval == (0.0, 0.0) and not out["b"]["Base"].resolved
    average = [(s + 0.0) / 2 for s in (1, 2, 3, 4)]  # each seed: the mean over a and b of the differences
    assert out["Average"]["Base"].mean == pytest.approx(1.25)
    assert out["Average"]["Base"].interval == pytest.approx(reference_interval(average))
    new = stats.paired_differences(mine, ref, {"New": lambda rs: stats.mean(r["new"] for r in rs)})
    per_seed = [((2 * s - s * s) + (-s)) / 2 for s in (1, 2, 3, 4)]
    assert new["Average"]["New"].interval == pytest.approx(reference_interval(per_seed))
    assert new["Average"]["New"].resolved  # the per-seed differences -0.5, -1, -3, -6: all below 0


def test_pairs_that_do_not_match_are_refused_naming_the_missing_ones():
    mine = [_b2n("a", s, 70.0, 60.0) for s in (1, 2, 3)]
    ref = [_b2n("a", s, 70.0, 60.0) for s in (1, 2)] + [_b2n("c", 1, 1.0, 1.0)]
    with pytest.raises(stats.PairingError, match=r"dra lacks c seed 1; adapter lacks a seed 3"):
        stats.paired_differences(mine, ref, {}, method="dra", reference="adapter")


def test_protocol_tables_show_the_interval_and_keep_their_keys():
    recs = [_b2n("dtd", s, b, n) for s, b, n in [(1, 80.0, 60.0), (2, 82.0, 62.0), (3, 84.0, 70.0)]]
    recs += [_b2n("eurosat", s, b, n) for s, b, n in [(1, 90.0, 70.0), (2, 91.0, 71.0), (3, 95.0, 70.0)]]
    t = base2new_table(recs, intervals=True)
    low, high = reference_interval([80.0, 82.0, 84.0])
    assert t.intervals[0][1] == pytest.approx((low, high))
    assert f"82.00 ± 2.00 [{low:.2f}, {high:.2f}]" in t.to_markdown()
    row = t.to_json()[0]
    assert list(row)[:5] == ["Dataset", "Base", "Base_std", "Base_ci95_low", "Base_ci95_high"]
    assert (row["Base_ci95_low"], row["Base_ci95_high"]) == pytest.approx((low, high))
    per_seed_average = [(80 + 90) / 2, (82 + 91) / 2, (84 + 95) / 2]
    assert t.rows[-1][1] == pytest.approx(statistics.mean(per_seed_average))
    assert t.stds[-1][1] == pytest.approx(statistics.stdev(per_seed_average))
    assert t.intervals[-1][1] == pytest.approx(reference_interval(per_seed_average))
    assert "Base_ci95_low" not in base2new_table(recs).to_json()[0]  # opt-in: the plain builder is unchanged
    single = base2new_table([_b2n("dtd", 1, 80.0, 60.0)], intervals=True)
    assert single.intervals[0][1] is None and "[" not in single.to_terminal().splitlines()[3]
    acc = [
        {"dataset": d, "seed": s, "accuracy": v}
        for d, vs in (("src", (1, 2)), ("t", (10, 30)))
        for s, v in zip((1, 2), vs)
    ]
    transfer = method_transfer_table({"m": acc}, intervals=True)
    assert transfer.intervals[0][2] == (10.0, 30.0) and transfer.cell("m", "Average") == 20.0


def test_paired_table_rows_and_a_reference_without_results():
    recs = {
        "adapter": [_b2n("dtd", s, 70.0, 50.0 + s) for s in (1, 2, 3)],
        "dra": [_b2n("dtd", s, 72.0, 50.0) for s in (1, 2, 3)],
    }
    t = paired_table(recs, "adapter", failed={"mma": "boom"}, order=["adapter", "dra", "mma"])
    assert t.columns == [
        "Method",
        "Dataset",
        "Δ Base",
        "Base resolved",
        "Δ New",
        "New resolved",
        "Δ HM",
        "HM resolved",
        "Seeds",
        "Status",
    ]
    dra = t.to_json()[0]
    assert (dra["Method"], dra["Dataset"], dra["Δ Base"], dra["Base resolved"], dra["Seeds"]) == (
        "dra",
        "DTD",
        2.0,
        True,
        3,
    )
    assert (dra["Δ New_ci95_low"], dra["Δ New_ci95_high"]) == pytest.approx(reference_interval([-1.0, -2.0, -3.0]))
    assert dra["New resolved"] is True and t.rows[1][-1] == "failed: boom"
    assert "yes" in t.to_terminal()
    with pytest.raises(ValueError, match="--reference mma has no results"):
        paired_table(recs, "mma", failed={"mma": "boom"})


def test_ablation_and_transfer_tables_carry_the_interval_of_their_seeds():
    from dra.protocols.ablate import settings_table
    from dra.report.paper_tables import cross_dataset_table

    records = [{"setting": "on", "seed": s, "base": b, "new": 50.0} for s, b in ((1, 70.0), (2, 74.0), (3, 71.0))]
    t = settings_table(records, "base2new", "t")
    assert t.intervals[0][1] == pytest.approx(reference_interval([70.0, 74.0, 71.0])) and t.intervals[0][2] == (
        50.0,
        50.0,
    )
    rows = [
        {"dataset": d, "seed": s, "accuracy": a}
        for d, accs in (("imagenet", (70.0, 72.0)), ("dtd", (40.0, 44.0)), ("eurosat", (50.0, 60.0)))
        for s, a in zip((1, 2), accs)
    ]
    t = cross_dataset_table(rows, intervals=True)
    assert t.columns == ["Method", "ImageNet", "DTD", "EuroSAT", "Average"]
    assert t.intervals[0][2] == (40.0, 44.0) and t.rows[0][-1] == 48.5
    assert t.intervals[0][-1] == (45.0, 52.0) and t.stds[0][-1] == pytest.approx(statistics.stdev([45.0, 52.0]))
    assert "Average_ci95_low" not in cross_dataset_table(rows).to_json()[0]
