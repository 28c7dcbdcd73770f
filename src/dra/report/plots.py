"""Result plots (PNG): base-to-new bars (Table 1) and ablation curves (Figure 3).

Figures are built with ``matplotlib.figure.Figure`` and rendered by the Agg canvas, so no
pyplot state or global backend is touched; files are written atomically.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dra.io import atomic_write
from dra.report.tables import Table, ablation_table, base2new_table

__all__ = ["new_figure", "save_figure", "plot_base2new", "plot_ablation"]

_COLORS = {"Base": "#4C72B0", "New": "#DD8452", "HM": "#55A868"}


def new_figure(figsize: tuple[float, float] = (8.0, 4.0), dpi: int = 100) -> Figure:
    """A Figure attached to an Agg canvas (independent of the pyplot backend)."""
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """Save ``fig`` as PNG at ``path`` through a temp file and ``os.replace``; returns the path."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight", **savefig_kwargs))


def _as_base2new_table(table_or_records: Table | Sequence[Mapping[str, Any]]) -> Table:
    if isinstance(table_or_records, Table):
        missing = {"Base", "New", "HM"} - set(table_or_records.columns)
        if missing:
            raise ValueError(f"table lacks columns {sorted(missing)}")
        return table_or_records
    return base2new_table(table_or_records)


def plot_base2new(
    table_or_records: Table | Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Grouped bars of Base, New and HM per dataset (Average included when present).

    Accepts a :func:`~dra.report.tables.base2new_table` Table or its records. Error bars show
    the seed std where the table has one for rows with at least two seeds.
    """
    table = _as_base2new_table(table_or_records)
    labels = [str(x) for x in table.labels]
    x = np.arange(len(labels))
    width = 0.27
    fig = new_figure(figsize=(max(6.0, 0.9 * len(labels) + 2.0), 4.0))
    ax = fig.add_subplot(1, 1, 1)
    for k, col in enumerate(("Base", "New", "HM")):
        j = table.columns.index(col)
        vals = np.array([np.nan if r[j] is None else float(r[j]) for r in table.rows])
        err = None
        if table.stds is not None:
            err = np.array([
                (s[j] if s[j] is not None and table._show_std(i) else np.nan)
                for i, s in enumerate(table.stds)
            ], dtype=float)
            if not np.nan_to_num(err).any():
                err = None
        ax.bar(x + (k - 1) * width, vals, width, yerr=err, label=col,
               color=_COLORS[col], capsize=2 if err is not None else 0)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel("Accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title if title is not None else table.title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def plot_ablation(
    records: Table | Sequence[Mapping[str, Any]],
    x_key: str,
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Base, New and HM against a swept setting (paper Fig. 3: ``r`` and ``h``).

    ``records`` are ``{x_key: value, "seed", "base", "new"}`` (means over seeds, HM of the
    means; see :func:`~dra.report.tables.ablation_table`) or such a Table. Values are placed
    at even spacing and labelled with the swept values (r = 8, 16, 32, 64, ... reads better
    that way than on a linear axis).
    """
    table = records if isinstance(records, Table) else ablation_table(records, x_key)
    labels = [table._fmt_value(v, table.columns[0]) for v in table.labels]
    x = np.arange(len(labels))
    fig = new_figure(figsize=(max(4.5, 0.8 * len(labels) + 2.0), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    for col, marker in (("Base", "o"), ("New", "s"), ("HM", "^")):
        vals = [np.nan if v is None else float(v) for v in table.column(col)]
        ax.plot(x, vals, marker=marker, label=col, color=_COLORS[col])
    ax.set_xticks(x)
    ax.set_xticklabels(labels)
    ax.set_xlabel(x_key)
    ax.set_ylabel("Accuracy (%)")
    ax.set_title(title if title is not None else table.title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
