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

from dra.errors import SettingsError
from dra.io import atomic_write
from dra.report.paper_tables import ablation_table, base2new_table
from dra.report.tables import Table, is_number
from dra.run_files import parse_result_name

__all__ = ["new_figure", "save_figure", "plot_base2new", "plot_ablation", "plot_curves", "run_accuracies"]

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

    Accepts a :func:`~dra.report.paper_tables.base2new_table` Table or its records. Error bars show
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
            err = np.array(
                [(s[j] if s[j] is not None and table._show_std(i) else np.nan) for i, s in enumerate(table.stds)],
                dtype=float,
            )
            if not np.nan_to_num(err).any():
                err = None
        ax.bar(
            x + (k - 1) * width,
            vals,
            width,
            yerr=err,
            label=col,
            color=_COLORS[col],
            capsize=2 if err is not None else 0,
        )
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
    """The ablation plot: the scores of each value of a swept setting, with the std over seeds.

    ``records`` are :func:`~dra.report.paper_tables.ablation_table`'s (``{x_key: value, "seed", "base",
    "new"}``) or such a Table (Base / New / HM, or Source / Target). Numeric values (paper Fig. 3: ``r``
    and ``h``) are lines at even spacing labelled with the values (r = 8, 16, 32, 64, ... reads better
    that way than on a linear axis); named settings (Tables 4, 5, `dra ablate`) are grouped bars. A
    NaN (a setting that diverged in every seed) has no point or bar.
    """
    table = records if isinstance(records, Table) else ablation_table(records, x_key)
    cols = [c for c in table.columns[1:] if c != "Collapsed"]  # a count of runs, not an accuracy
    labels = [table._fmt_value(v, table.columns[0]) for v in table.labels]
    lines = all(is_number(v) for v in table.labels)
    x = np.arange(len(labels))
    size = (max(4.5, 0.8 * len(labels) + 2.0), 3.6) if lines else (max(6.0, 1.1 * len(labels) + 2), 4.0)
    fig = new_figure(figsize=size)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(cols)
    for k, (col, marker) in enumerate(zip(cols, "os^v")):
        vals = [np.nan if v is None else float(v) for v in table.column(col)]
        if lines:
            ax.plot(x, vals, marker=marker, label=col, color=_COLORS.get(col))
        else:
            errs = np.nan_to_num([table.std(label, col) or 0.0 for label in table.labels])  # no std: no bar
            offset = (k - (len(cols) - 1) / 2) * width
            ax.bar(x + offset, vals, width, yerr=errs, label=col, capsize=2, color=_COLORS.get(col))
    ax.set_xticks(x)
    if lines:
        ax.set_xticklabels(labels)
        ax.set_xlabel(x_key)
    else:
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize="small")
        values = [float(v) for c in cols for v in table.column(c) if v is not None and not np.isnan(float(v))]
        values = values or [0.0]
        ax.set_ylim(max(0.0, min(values) - 10), min(100.0, max(values) + 5))
    ax.set_ylabel("Accuracy (%)")
    ax.set_title(title if title is not None else table.title, fontsize="medium" if lines else "small")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, axis="both" if lines else "y")
    if not lines:
        fig.tight_layout()
    return save_figure(fig, path)


_ACC_KEYS = {"base": "base", "new": "new", "hm": "HM", "accuracy": "accuracy"}


def run_accuracies(run_dir: str | os.PathLike, rows: Sequence[Mapping[str, Any]] = ()) -> dict[str, float]:
    """Test accuracies of a run: its `kind=eval` metrics rows, else its result files (`result*.json`: base,
    new, HM; `eval_<target>*.json`: accuracy; `dra eval` output saved as JSON)."""
    import json

    out = {
        str(r["name"]): float(r["accuracy"])
        for r in rows
        if r.get("kind") == "eval" and "accuracy" in r and "name" in r
    }
    if out:
        return out
    for path in sorted(Path(run_dir).glob("*.json")):
        parsed = parse_result_name(path.name)
        if parsed is None:
            continue
        kind, suffix = parsed
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        for key, label in _ACC_KEYS.items():
            if isinstance(data.get(key), (int, float)):
                name = label if kind == "result" else data.get("dataset", suffix)
                out[f"{name}{suffix}" if kind == "result" else str(name)] = float(data[key])
    return out


def plot_curves(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    title: str | None = None,
    accuracies: Mapping[str, float] | None = None,
) -> Path:
    """Training curves of one run (rows of its metrics.csv): loss and its parts per logged step (lines) and
    per epoch (markers), the learning rate, and the test accuracies where the run was evaluated (bars)."""
    steps = [r for r in rows if r.get("kind") == "step" and "global_step" in r]
    epochs = [r for r in rows if r.get("kind") == "epoch" and "global_step" in r]
    if not steps and not epochs:
        raise SettingsError("no training rows to plot (metrics.csv holds no step or epoch row)")
    skip = {"kind", "epoch", "step", "global_step", "lr", "img_s", "seconds", "name", "accuracy"}
    parts = [k for k in dict.fromkeys(k for r in (*steps, *epochs) for k in r) if k not in skip]
    panels = 3 if accuracies else 2
    fig = new_figure(figsize=(4.2 * panels, 3.6))
    ax = fig.add_subplot(1, panels, 1)
    colors = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B2", "#937860"]
    small = [p for p in parts if p.startswith("reg")]  # regularisation terms: their own (right) axis
    twin = ax.twinx() if small and len(small) < len(parts) else None
    for i, part in enumerate(parts):
        color = colors[i % len(colors)]
        target = twin if twin is not None and part in small else ax
        xs = [r["global_step"] for r in steps if part in r]
        if xs:
            target.plot(xs, [r[part] for r in steps if part in r], color=color, alpha=0.5, linewidth=1, label=part)
        xe = [r["global_step"] for r in epochs if part in r]
        if xe:
            target.plot(
                xe,
                [r[part] for r in epochs if part in r],
                "o-",
                color=color,
                markersize=4,
                label=f"{part} (epoch mean)" if xs else part,
            )
    if twin is not None:
        twin.set_ylabel(", ".join(small) + " (right)", fontsize="small")
        lines = ax.get_legend_handles_labels()
        extra = twin.get_legend_handles_labels()
        ax.legend(lines[0] + extra[0], lines[1] + extra[1], fontsize="x-small")
    else:
        ax.legend(fontsize="x-small")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    ax = fig.add_subplot(1, panels, 2)
    lr_rows = steps or epochs
    ax.plot(
        [r["global_step"] for r in lr_rows if "lr" in r],
        [r["lr"] for r in lr_rows if "lr" in r],
        color="#4C72B0",
        drawstyle="steps-post",
    )
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title("learning rate")
    ax.grid(alpha=0.3)
    if accuracies:
        ax = fig.add_subplot(1, panels, 3)
        names = list(accuracies)
        vals = [float(accuracies[n]) for n in names]
        bars = ax.bar(np.arange(len(names)), vals, color=[colors[i % len(colors)] for i in range(len(names))])
        for bar, v in zip(bars, vals):
            ax.text(bar.get_x() + bar.get_width() / 2, v + 1, f"{v:.1f}", ha="center", fontsize="small")
        ax.set_xticks(np.arange(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize="small")
        ax.set_ylim(0, 105)
        ax.set_ylabel("accuracy (%)")
        ax.set_title("test accuracy")
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    return save_figure(fig, path)
