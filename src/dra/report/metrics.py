"""Scalar metrics shared by the tables and plots: harmonic mean, seed mean and std."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["harmonic_mean", "mean_std", "mean"]


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
