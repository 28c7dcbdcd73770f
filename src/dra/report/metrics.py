"""Scalar metrics shared by the tables and plots: harmonic mean, seed mean and std."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["harmonic_mean", "mean_std", "mean", "interval95"]


def harmonic_mean(base: float, new: float) -> float:
    """HM = 2·B·N / (B + N) of base and new accuracy (any unit; percent in this project).

    Returns 0.0 when both are 0 (the only case where the formula divides by zero for
    non-negative accuracies).
    """
    base, new = float(base), float(new)
    if base < 0 or new < 0:
        raise ValueError(f"accuracies must be non-negative, got base={base}, new={new}")
    total = base + new
    if total == 0:
        return 0.0
    return 2.0 * base * new / total


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean of a non-empty sequence of numbers, as a Python float."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean of an empty sequence")
    return math.fsum(vals) / len(vals)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and *sample* standard deviation (ddof=1) of per-seed values.

    With a single value the std is defined as 0.0 (nothing to estimate a spread from).
    """
    vals = [float(v) for v in values]
    m = mean(vals)
    if len(vals) < 2:
        return m, 0.0
    var = math.fsum((v - m) ** 2 for v in vals) / (len(vals) - 1)
    return m, math.sqrt(var)


# two-sided 95% quantiles of Student's t by degrees of freedom (n seeds - 1); above 30: the normal's
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}
_T95.update(
    {
        k: v
        for k, v in zip(
            range(11, 31),
            (
                2.201,
                2.179,
                2.160,
                2.145,
                2.131,
                2.120,
                2.110,
                2.101,
                2.093,
                2.086,
                2.080,
                2.074,
                2.069,
                2.064,
                2.060,
                2.056,
                2.052,
                2.048,
                2.045,
                2.042,
            ),
        )
    }
)


def interval95(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95% confidence interval of the mean over seeds (Student's t, sample std); None below 2 values."""
    if len(values) < 2:
        return None
    m, s = mean_std(values)
    half = _T95.get(len(values) - 1, 1.96) * s / math.sqrt(len(values))
    return m - half, m + half
