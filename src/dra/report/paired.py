"""The paired-difference table of `dra compare --reference METHOD`: each method minus the reference on the
same (dataset, seed) pairs, per dataset and for the average over datasets, with the 95 % bootstrap
interval over seeds and whether it is resolved (the interval excludes 0). The statistics are
`dra.report.stats`'s."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dra.report.metrics import harmonic_mean, mean
from dra.report.paper_tables import display_name
from dra.report.stats import RESAMPLES, PairingError, check_pairs, paired_differences
from dra.report.tables import Table

__all__ = ["METRICS", "paired_table"]

METRICS = {
    "base2new": {
        "Base": lambda recs: mean(r["base"] for r in recs),
        "New": lambda recs: mean(r["new"] for r in recs),
        "HM": lambda recs: harmonic_mean(mean(r["base"] for r in recs), mean(r["new"] for r in recs)),
    },
    "transfer": {"Accuracy": lambda recs: mean(r["accuracy"] for r in recs)},
}
"""Per protocol: what is compared, as a function of one seed's records (one per dataset)."""


def paired_table(
    records: Mapping[str, Sequence[Mapping[str, Any]]],
    reference: str,
    protocol: str = "base2new",
    failed: Mapping[str, str] | None = None,
    order: Sequence[str] | None = None,
) -> Table:
    """A row per (method, dataset) and per method's Average: Δ = method − reference for each metric
    (mean over seeds, ± the std of the per-seed differences, the interval in `intervals`) and a
    "<metric> resolved" column. `records`: {method: [{"dataset", "seed", ...}]} as `dra compare` keeps
    them; a method in `failed` is a row with its reason. PairingError (a ValueError) when a method and
    the reference do not cover the same (dataset, seed) pairs; ValueError when the reference has none."""
    failed = dict(failed or {})
    if reference not in records or not records[reference]:
        reason = failed.get(reference, "no results")
        raise PairingError(f"--reference {reference} has no results ({reason}): there is nothing to pair with")
    kind = "base2new" if protocol == "base2new" else "transfer"
    metrics = METRICS[kind]
    ref = list(records[reference])
    datasets = list(dict.fromkeys(r["dataset"] for r in ref))
    average_over = datasets if kind == "base2new" else datasets[1:]  # transfer: the targets, not the source
    order = [m for m in (order or list(dict.fromkeys([*records, *failed]))) if m != reference]
    for method in order:  # every pairing checked before any number
        if method not in failed and method in records:
            check_pairs(method, records[method], reference, ref)
    columns = ["Method", "Dataset"]
    for name in metrics:
        columns += [f"Δ {name}", f"{name} resolved"]
    columns += ["Seeds", "Status"]
    rows, stds, cis, n_seeds = [], [], [], []
    for method in order:
        if method in failed or method not in records:
            rows.append([method, None, *[None] * (2 * len(metrics) + 1), f"failed: {failed.get(method, 'no results')}"])
            stds.append([None] * len(columns))
            cis.append([None] * len(columns))
            n_seeds.append(None)
            continue
        diffs = paired_differences(records[method], ref, metrics, datasets, method, reference, average_over)
        for label, summaries in diffs.items():
            row: list[Any] = [method, label if label == "Average" else display_name(label)]
            srow: list[Any] = [None, None]
            crow: list[Any] = [None, None]
            for name in metrics:
                s = summaries[name]
                row += [s.mean, s.resolved]
                srow += [s.std if s.std is not None else 0.0, None]
                crow += [s.interval, None]
            n = next(iter(summaries.values())).n
            rows.append(row + [n, "ok"])
            stds.append(srow + [None, None])
            cis.append(crow + [None, None])
            n_seeds.append(n)
    notes = [
        f"Δ = method − {reference} on the same datasets and seeds: the mean over seeds ± the sample std of the "
        f"per-seed differences [95 % percentile bootstrap interval of the mean, {RESAMPLES:,} seeded resamples of "
        "the seeds]; resolved: the interval excludes 0. One seed: no interval, never resolved.",
        "Average: each seed's difference of the averages over datasets"
        + (" (HM: of each seed's HM of its averaged Base and New)" if kind == "base2new" else " (the targets)")
        + ", resampled by seed.",
    ]
    title = f"Paired differences to {reference} (method − {reference})"
    return Table(title=title, columns=columns, rows=rows, stds=stds, n_seeds=n_seeds, notes=notes, intervals=cis)
