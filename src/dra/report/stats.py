"""Statistics over seeds a reader can trust: mean, sample std, a seeded percentile bootstrap interval of
the mean, and the paired difference of two methods over the same (dataset, seed) pairs.

- `std` is the sample std (ddof=1); with one value there is none (None), and no interval either.
- `bootstrap_interval`: the 95 % percentile interval of the mean: `RESAMPLES` resamples of the values
  with replacement (numpy's `default_rng(SEED)`, one draw of indices), the mean of each, and the 2.5 and
  97.5 percentiles of those means (numpy's default linear interpolation). Deterministic: the same values
  give the same interval on every run. Values that are all equal give the zero-width interval at that
  value exactly. With few seeds the percentile bootstrap is too narrow (with 3 seeds it cannot reach
  beyond the smallest and largest value): read it with the seed count beside it.
- `paired_differences`: method minus reference on the same (dataset, seed) pairs (a pair missing on
  either side is an error naming it). Per dataset the values resampled are the per-seed differences;
  for the average over datasets, the unit is the seed: each seed's difference averaged over the
  datasets (so its mean is the difference of the tables' Average columns), which keeps the benchmark's
  datasets fixed and resamples what is random, the seeds. A difference is *resolved* when its
  interval excludes 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dra.errors import DraError
from dra.report.metrics import mean, mean_std

__all__ = [
    "RESAMPLES",
    "SEED",
    "LEVEL",
    "NO_INTERVAL",
    "Summary",
    "mean",
    "std",
    "bootstrap_interval",
    "summarise",
    "PairingError",
    "check_pairs",
    "paired_differences",
    "seed_average_summary",
]

RESAMPLES = 10_000
SEED = 0
LEVEL = 0.95
NO_INTERVAL = "one value: no std and no interval"


def std(values: Sequence[float]) -> float | None:
    """Sample standard deviation (ddof=1, `metrics.mean_std`); None for fewer than two values."""
    vals = list(values)
    return mean_std(vals)[1] if len(vals) >= 2 else None


def bootstrap_interval(
    values: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL
) -> tuple[float, float] | None:
    """The percentile bootstrap interval of the mean (see the module docstring); None for fewer than two
    values, (v, v) when every value is v."""
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    if len(x) < 2:
        return None
    if not np.all(np.isfinite(x)):
        raise ValueError(f"bootstrap of non-finite values {x.tolist()}")
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    index = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    means = x[index].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class Summary:
    """n, mean, sample std and the bootstrap interval of some values (std/low/high None below two)."""

    n: int
    mean: float
    std: float | None
    low: float | None
    high: float | None

    @property
    def interval(self) -> tuple[float, float] | None:
        return None if self.low is None or self.high is None else (self.low, self.high)

    @property
    def resolved(self) -> bool:
        """The interval excludes 0 (never with one value)."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    @property
    def note(self) -> str:
        return NO_INTERVAL if self.n < 2 else ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "ci95_low": self.low,
            "ci95_high": self.high,
            "resolved": self.resolved,
            **({"note": self.note} if self.note else {}),
        }


def summarise(values: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED) -> Summary:
    vals = [float(v) for v in values]
    interval = bootstrap_interval(vals, resamples, seed)
    return Summary(len(vals), mean(vals), std(vals), *(interval or (None, None)))


class PairingError(DraError, ValueError):
    """Two methods' results do not cover the same (dataset, seed) pairs; the message names the missing ones."""


def _pairs_text(pairs: Iterable[tuple[str, int]], limit: int = 4) -> str:
    pairs = sorted(pairs, key=lambda p: (str(p[0]), p[1]))
    text = ", ".join(f"{d} seed {s}" for d, s in pairs[:limit])
    return text + (f" and {len(pairs) - limit} more" if len(pairs) > limit else "")


def check_pairs(method: str, records: Sequence[Mapping], reference: str, ref_records: Sequence[Mapping]) -> None:
    """PairingError unless both methods have results for exactly the same (dataset, seed) pairs."""
    mine = {(r["dataset"], int(r["seed"])) for r in records}
    theirs = {(r["dataset"], int(r["seed"])) for r in ref_records}
    if mine != theirs:
        parts = []
        if theirs - mine:
            parts.append(f"{method} lacks {_pairs_text(theirs - mine)}")
        if mine - theirs:
            parts.append(f"{reference} lacks {_pairs_text(mine - theirs)}")
        raise PairingError(
            f"--reference {reference}: {method} and {reference} were not run on the same datasets and seeds "
            f"({'; '.join(parts)}); run both on the same --datasets and --seeds"
        )


def paired_differences(
    records: Sequence[Mapping],
    ref_records: Sequence[Mapping],
    metrics: Mapping[str, Callable[[Sequence[Mapping]], float]],
    datasets: Sequence[str] | None = None,
    method: str = "method",
    reference: str = "reference",
    average_over: Sequence[str] | None = None,
) -> dict[str, dict[str, Summary]]:
    """{dataset or "Average": {metric: Summary of method - reference}} over the same (dataset, seed) pairs.

    `metrics` maps a name to a function of the records of one seed (one record per dataset, or a
    single record for one dataset) to the value compared, e.g. the mean base accuracy over datasets.
    `datasets`: the rows (default: every dataset, in record order); `average_over`: the datasets the
    "Average" row is over (default: `datasets`; it is left out unless there are two or more of them and
    they share their seeds)."""
    check_pairs(method, records, reference, ref_records)
    by_pair = {(r["dataset"], int(r["seed"])): r for r in records}
    ref_pair = {(r["dataset"], int(r["seed"])): r for r in ref_records}
    datasets = list(datasets) if datasets is not None else list(dict.fromkeys(r["dataset"] for r in records))
    out: dict[str, dict[str, Summary]] = {}
    for dataset in datasets:
        seeds = sorted(s for d, s in by_pair if d == dataset)
        out[dataset] = {
            name: summarise([f([by_pair[(dataset, s)]]) - f([ref_pair[(dataset, s)]]) for s in seeds])
            for name, f in metrics.items()
        }
    over = list(average_over) if average_over is not None else datasets
    seed_sets = {frozenset(s for d, s in by_pair if d == dataset) for dataset in over}
    if len(over) > 1 and len(seed_sets) == 1:  # the average over datasets, seed by seed
        seeds = sorted(next(iter(seed_sets)))
        out["Average"] = {
            name: summarise([f([by_pair[(d, s)] for d in over]) - f([ref_pair[(d, s)] for d in over]) for s in seeds])
            for name, f in metrics.items()
        }
    return out


def seed_average_summary(per_dataset: Mapping[Any, Mapping[Any, float]]) -> Summary | None:
    """The Summary over seeds of the per-seed average over datasets ({dataset: {seed: value}}); None
    unless every dataset has the same seeds (then the mean equals the average of the seed means)."""
    seed_sets = {frozenset(v) for v in per_dataset.values()}
    if not per_dataset or len(seed_sets) != 1:
        return None
    seeds = sorted(next(iter(seed_sets)), key=str)
    return summarise([mean(per_dataset[d][s] for d in per_dataset) for s in seeds])
