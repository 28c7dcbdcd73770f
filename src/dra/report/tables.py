"""The results table and its renderers: one `Table` (title, columns, rows, per-cell std and seed counts,
best-value marks, notes) shown as markdown, CSV, JSON, fixed-width terminal text or a rich table.

Renderers: :meth:`Table.to_markdown`, :meth:`Table.to_csv`, :meth:`Table.to_json`,
:meth:`Table.to_terminal` (plain fixed width), :meth:`Table.to_rich`; :func:`write` stores
``stem.md``, ``stem.csv`` and ``stem.json`` atomically. Only the text renderers (markdown,
terminal) round; CSV and JSON keep full precision; "± std" is printed only for rows that rest on at
least two seeds. The paper's tables are built in :mod:`dra.report.paper_tables`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dra.io import atomic_write_text
from dra.run_files import table_files

__all__ = ["Table", "write", "is_number"]


def is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _json_value(v: Any) -> Any:
    """Python scalar for JSON: floats stay floats (NaN/inf -> None), ints stay ints."""
    if v is None or isinstance(v, (str, bool)):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if is_number(v):
        f = float(v)
        return f if math.isfinite(f) else None
    if hasattr(v, "item"):  # 0-d numpy / torch values
        return _json_value(v.item())
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    return str(v)


@dataclass
class Table:
    """A results table: a label column first, then value columns.

    Attributes:
        title: caption.
        columns: header names; ``columns[0]`` labels the rows (Dataset, Method, ...).
        rows: one list per row, ``len(columns)`` values each (``None`` = missing, shown "-").
        stds: optional grid of the same shape with the std over seeds of each cell (``None``
            where a cell has none, e.g. HM and the Average row).
        n_seeds: optional seed count per row (the smallest over the row's cells); "± std" is
            printed only where it is at least 2.
        formats: format spec per column for the text renderers (default ``".2f"`` for
            floats), e.g. ``{"Trainable params": ",d"}``.
        notes: free-text lines printed under the markdown / terminal table.
    """

    title: str
    columns: list[str]
    rows: list[list[Any]]
    stds: list[list[float | None]] | None = None
    n_seeds: list[int | None] | None = None
    formats: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    best: list[list[bool]] | None = None
    """Optional grid of the same shape: cells marked best in their column (bold in markdown, a trailing
    "*" on the terminal, listed under "best" in the JSON file)."""
    intervals: list[list[tuple[float, float] | None]] | None = None
    """Optional grid of the same shape: the 95 % interval of a cell's mean over seeds (`dra.report.stats`),
    printed "[low, high]" after the "± std" and stored as "<column>_ci95_low" / "_ci95_high"."""

    def __post_init__(self) -> None:
        self.columns = list(self.columns)
        self.rows = [list(r) for r in self.rows]
        for r in self.rows:
            if len(r) != len(self.columns):
                raise ValueError(f"row {r!r} has {len(r)} values for {len(self.columns)} columns")
        if self.stds is not None:
            self.stds = [list(r) for r in self.stds]
            if len(self.stds) != len(self.rows) or any(len(s) != len(self.columns) for s in self.stds):
                raise ValueError("stds must have the same shape as rows")
        if self.n_seeds is not None:
            self.n_seeds = list(self.n_seeds)
            if len(self.n_seeds) != len(self.rows):
                raise ValueError("n_seeds needs one entry per row")
        if self.intervals is not None:
            self.intervals = [list(r) for r in self.intervals]
            if len(self.intervals) != len(self.rows) or any(len(s) != len(self.columns) for s in self.intervals):
                raise ValueError("intervals must have the same shape as rows")

    # ---- access -----------------------------------------------------------------------------

    @property
    def labels(self) -> list[Any]:
        """The row labels (first column)."""
        return [r[0] for r in self.rows]

    def column(self, name: str) -> list[Any]:
        j = self.columns.index(name)
        return [r[j] for r in self.rows]

    def cell(self, label: Any, column: str) -> Any:
        """The value in the row labelled ``label`` and the given column."""
        return self.rows[self.labels.index(label)][self.columns.index(column)]

    def std(self, label: Any, column: str) -> float | None:
        if self.stds is None:
            return None
        return self.stds[self.labels.index(label)][self.columns.index(column)]

    def _std_columns(self) -> list[int]:
        if self.stds is None:
            return []
        return [j for j in range(len(self.columns)) if any(s[j] is not None for s in self.stds)]

    # ---- text formatting --------------------------------------------------------------------

    def _fmt_value(self, v: Any, column: str) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float) and not math.isfinite(v):
            return "-" if math.isnan(v) else str(v)
        spec = self.formats.get(column)
        if is_number(v):
            if spec is None:
                spec = "d" if isinstance(v, numbers.Integral) else ".2f"
            try:
                return format(v, spec)
            except ValueError:  # e.g. ",d" given a float
                return format(float(v), ".2f")
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(self._fmt_value(x, column) for x in v) + "]"
        return str(v)

    def _show_std(self, i: int) -> bool:
        if self.stds is None:
            return False
        if self.n_seeds is None or self.n_seeds[i] is None:
            return True
        return self.n_seeds[i] >= 2

    def _fmt_cell(self, i: int, j: int, with_std: bool) -> str:
        col = self.columns[j]
        text = self._fmt_value(self.rows[i][j], col)
        if with_std and self._show_std(i) and self.rows[i][j] is not None:
            s = self.stds[i][j]  # type: ignore[index]
            if s is not None:
                spec = self.formats.get(col, ".2f")
                try:
                    text += f" ± {format(float(s), spec)}"
                except ValueError:
                    text += f" ± {float(s):.2f}"
        ci = self.intervals[i][j] if self.intervals is not None else None
        if with_std and ci is not None and self._show_std(i) and self.rows[i][j] is not None:
            text += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
        return text

    def _is_best(self, i: int, j: int) -> bool:
        return bool(self.best and self.best[i][j])

    def _text_grid(self, with_std: bool) -> list[list[str]]:
        return [[self._fmt_cell(i, j, with_std) for j in range(len(self.columns))] for i in range(len(self.rows))]

    # ---- renderers --------------------------------------------------------------------------

    def to_markdown(self, std: bool = True) -> str:
        """GitHub markdown: bold title line, the table (2 decimals, "± std"), then the notes."""

        def esc(s: str) -> str:
            return s.replace("|", "\\|")

        lines = []
        if self.title:
            lines += [f"**{esc(self.title)}**", ""]
        lines.append("| " + " | ".join(esc(c) for c in self.columns) + " |")
        lines.append("|" + "|".join([":---"] + ["---:"] * (len(self.columns) - 1)) + "|")
        for i, row in enumerate(self._text_grid(std)):
            lines.append(
                "| " + " | ".join(f"**{esc(c)}**" if self._is_best(i, j) else esc(c) for j, c in enumerate(row)) + " |"
            )
        if self.notes:
            lines.append("")
            lines += list(self.notes)
        return "\n".join(lines) + "\n"

    def to_terminal(self, std: bool = True) -> str:
        """Plain fixed-width text: title, header, rule, rows (labels left, numbers right)."""
        grid = [list(self.columns)] + [
            [c + " *" if self._is_best(i, j) else c for j, c in enumerate(row)]
            for i, row in enumerate(self._text_grid(std))
        ]
        widths = [max(len(r[j]) for r in grid) for j in range(len(self.columns))]

        def line(cells: list[str]) -> str:
            parts = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
            return "  ".join(parts).rstrip()

        out = []
        if self.title:
            out.append(self.title)
        out.append(line(grid[0]))
        out.append("  ".join("-" * w for w in widths))
        out += [line(r) for r in grid[1:]]
        out += list(self.notes)
        return "\n".join(out) + "\n"

    def to_rich(self, std: bool = True):
        """A ``rich.table.Table`` for console printing (rich is imported lazily)."""
        from rich.table import Table as RichTable

        rt = RichTable(title=self.title or None)
        for j, c in enumerate(self.columns):
            rt.add_column(c, justify="left" if j == 0 else "right")
        for row in self._text_grid(std):
            rt.add_row(*row)
        return rt

    def to_json(self) -> list[dict[str, Any]]:
        """One dict per row, full precision (JSON-ready Python objects, not a string).

        Keys: every column; ``"<column>_std"`` after each column that has stds, then
        ``"<column>_ci95_low"`` / ``"<column>_ci95_high"`` where it has intervals; ``"n_seeds"``
        last when known. Missing values and NaN are ``None``.
        """
        std_cols = set(self._std_columns())
        ci_cols = {j for r in self.intervals or [] for j, ci in enumerate(r) if ci is not None}
        out = []
        for i, row in enumerate(self.rows):
            d: dict[str, Any] = {}
            for j, col in enumerate(self.columns):
                d[col] = _json_value(row[j])
                if j in std_cols:
                    d[f"{col}_std"] = _json_value(self.stds[i][j])  # type: ignore[index]
                if j in ci_cols:
                    ci = self.intervals[i][j]  # type: ignore[index]
                    d[f"{col}_ci95_low"] = None if ci is None else _json_value(ci[0])
                    d[f"{col}_ci95_high"] = None if ci is None else _json_value(ci[1])
            if self.n_seeds is not None:
                d["n_seeds"] = _json_value(self.n_seeds[i])
            out.append(d)
        return out

    def to_csv(self) -> str:
        """CSV text with the same columns as :meth:`to_json`, full precision, "" for missing."""
        records = self.to_json()
        fieldnames = list(records[0].keys()) if records else list(self.columns)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        for r in records:
            writer.writerow({k: ("" if v is None else (repr(v) if isinstance(v, float) else v)) for k, v in r.items()})
        return buf.getvalue()

    def to_dict(self) -> dict[str, Any]:
        """What :func:`write` stores as ``stem.json``."""
        out = {"title": self.title, "columns": list(self.columns), "rows": self.to_json(), "notes": list(self.notes)}
        if self.best:
            out["best"] = {
                str(row[0]): [c for j, c in enumerate(self.columns) if self.best[i][j]]
                for i, row in enumerate(self.rows)
            }
        return out

    def write(self, out_dir: str | os.PathLike, stem: str) -> dict[str, Path]:
        return write(self, out_dir, stem)

    def __str__(self) -> str:
        return self.to_terminal()


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def write(table: Table, out_dir: str | os.PathLike, stem: str) -> dict[str, Path]:
    """Write ``stem.md``, ``stem.csv`` and ``stem.json`` (title, columns, rows, notes) into
    ``out_dir`` (created if needed), each atomically. Returns ``{"md": ..., "csv": ..., "json": ...}``.
    """
    paths = table_files(out_dir, stem)
    return {
        "md": atomic_write_text(paths["md"], table.to_markdown()),
        "csv": atomic_write_text(paths["csv"], table.to_csv()),
        "json": atomic_write_text(paths["json"], json.dumps(table.to_dict(), indent=2) + "\n"),
    }
