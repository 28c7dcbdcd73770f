"""`dra report RUNS_DIR`: one self-contained HTML page of a runs folder (Jinja2; data, styles and images
inline, no script, nothing fetched at view time).

The page holds the base-to-new table built from the run folders (`runs.base2new_grid_table`: the
builder of `dra compare`, so the numbers are the JSON results' seed means), with ± std, 95% intervals
and missing runs marked; the tables dra wrote (compare, ablate, each protocol's); the efficiency
records; the token-rank maps of `dra visualize`; and per method its command, settings, runs and
training curves (`plot_curves`, the figure of `dra plot`, as inline PNG).
"""

from __future__ import annotations

import base64
import datetime
import math
import re
import tempfile
from pathlib import Path
from typing import Any

from dra.errors import SettingsError
from dra.io import atomic_write_text
from dra.report import runs as R
from dra.report.paper_tables import efficiency_table
from dra.report.tables import Table
from dra.run_files import METRICS_FILE, SETTINGS_FILE


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _anchor(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")


def _view(table: Table, table_id: str, seeds: dict | None = None, hrefs: dict | None = None) -> dict:
    """A Table as rows of cells for the template: text, full-precision value, best, std, interval."""
    rows = []
    for i, row in enumerate(table.rows):
        label = row[0]
        cells = [{"text": str(label)}]
        for j, v in enumerate(row[1:], start=1):
            column = table.columns[j]
            cell: dict[str, Any] = {"column": column, "value": None, "cls": "", "std": None, "ci": None}
            cell.update(partial=None, tip=None)
            if _num(v):
                fmt = table.formats.get(column, ".2f" if isinstance(v, float) else "d")
                cell["text"] = format(v, fmt)
                cell["value"] = repr(float(v)) if isinstance(v, float) else str(v)
                std = table.stds[i][j] if table.stds else None
                if std is not None and (table.n_seeds is None or (table.n_seeds[i] or 0) >= 2):
                    cell["std"] = f"{std:.2f}"
                ci = table.intervals[i][j] if table.intervals else None
                if ci is not None and (table.n_seeds is None or (table.n_seeds[i] or 0) >= 2):
                    cell["ci"] = f"[{ci[0]:.2f}, {ci[1]:.2f}]"
            elif v is None:
                cell["text"] = "missing" if row[-1] == "ok" or not isinstance(row[-1], str) else "-"
                cell["cls"] = "missing" if cell["text"] == "missing" else ""
            else:
                cell["text"] = str(v)
                cell["cls"] = "failed" if str(v).startswith("failed") else ""
            if table.best and table.best[i][j]:
                cell["cls"] = "best"
            info = (seeds or {}).get((label, column))
            if info:
                if info["interval"] is not None:
                    cell["ci"] = f"[{info['interval'][0]:.2f}, {info['interval'][1]:.2f}]"
                if len(info["values"]) < info["expected"]:
                    cell["partial"] = f"{len(info['values'])} of {info['expected']} seeds"
                cell["tip"] = "seeds: " + ", ".join(f"{x:.2f}" for x in info["values"])
            cells.append(cell)
        rows.append({"label": label, "cells": cells, "href": (hrefs or {}).get(label)})
    return {"id": table_id, "columns": table.columns, "rows": rows, "notes": table.notes}


def _paper_layout(view: dict) -> list[dict]:
    """A method table (`Method`, then `<dataset> Base/New/HM` ..., `Status`) as the paper prints Table 1:
    a block per dataset (and the average), a row per method, the columns Base / New / HM."""
    columns = view["columns"][1:-1]
    datasets = list(dict.fromkeys(c.rsplit(" ", 1)[0] for c in columns))
    blocks = []
    for d in datasets:
        rows = []
        for row in view["rows"]:
            by_column = {c["column"]: c for c in row["cells"][1:]}
            status = by_column[view["columns"][-1]]
            cells = [by_column[f"{d} {k}"] for k in ("Base", "New", "HM")]
            rows.append({"label": row["label"], "href": row["href"], "cells": cells, "status": status})
        blocks.append({"dataset": d, "rows": rows})
    return blocks


def _table_from_json(data: dict) -> Table:
    """A table file written by dra (`Table.to_dict`) as a Table again (stds, intervals and best included)."""
    columns = list(data["columns"])
    rows, stds = [], []
    for r in data["rows"]:
        rows.append([r.get(c) for c in columns])
        stds.append([r.get(f"{c}_std") for c in columns])
    best = data.get("best") or {}
    marks = [[c in best.get(str(row[0]), []) for c in columns] for row in rows]
    n_seeds = [r.get("n_seeds") for r in data["rows"]]
    cis = [
        [(r[f"{c}_ci95_low"], r[f"{c}_ci95_high"]) if r.get(f"{c}_ci95_low") is not None else None for c in columns]
        for r in data["rows"]
    ]
    return Table(
        title=str(data.get("title", "")),
        columns=columns,
        rows=rows,
        stds=stds,
        n_seeds=n_seeds if any(n is not None for n in n_seeds) else None,
        notes=list(data.get("notes") or []),
        best=marks if best else None,
        intervals=cis if any(ci for row in cis for ci in row) else None,
    )


def _png(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _curve(metrics: Path, title: str) -> str | None:
    """The run's training curves (the figure of `dra plot`) as base64 PNG; None without training rows."""
    from dra.engine.metrics_log import read_metrics
    from dra.report.plots import plot_curves, run_accuracies

    rows = read_metrics(metrics)
    if not any(r.get("kind") in ("step", "epoch") for r in rows):
        return None
    with tempfile.TemporaryDirectory(prefix="dra-report-") as tmp:
        out = plot_curves(rows, Path(tmp) / "curves.png", title=title, accuracies=run_accuracies(metrics.parent, rows))
        return _png(out)


def build(runs_dir: str | Path, echo=print) -> dict:
    """The template's context for a runs folder."""
    runs_dir = Path(runs_dir).resolve()
    if not runs_dir.is_dir():
        raise SettingsError(f"{runs_dir} is not a folder: give the --output folder of dra base2new / compare / ablate")
    groups = R.base2new_methods(runs_dir)
    metrics = R.metrics_files(runs_dir)
    done_curves: set[Path] = set()
    methods = []
    total = sum(len(g.runs) for g in groups)
    k = 0
    for g in groups:
        anchor = "m-" + _anchor(g.label)
        view_runs = []
        for r in g.runs:
            k += 1
            metrics_path = r.run_dir / METRICS_FILE
            curve = None
            if metrics_path.is_file():
                echo(f"curves {k}/{total}: {r.run_dir.relative_to(runs_dir)}")
                curve = _curve(metrics_path, f"{g.label} {r.dataset} seed {r.seed}")
                done_curves.add(metrics_path)
            res = r.result or {}
            view_runs.append(
                {
                    "dataset": r.dataset,
                    "seed": r.seed,
                    "nums": [res.get("base"), res.get("new"), res.get("hm")],
                    "status": r.status,
                    "log": str(r.log) if r.log else None,
                    "run_dir": str(r.run_dir.relative_to(runs_dir)),
                    "anchor": f"{anchor}-{_anchor(r.dataset)}-{r.seed}",
                    "curve": curve,
                }
            )
        methods.append(
            {
                "label": g.label,
                "anchor": anchor,
                "folder": str(g.folder.relative_to(runs_dir)),
                "command": g.command,
                "settings": g.settings,
                "runs": view_runs,
            }
        )
    grid = None
    if groups:
        table = R.base2new_grid_table(groups)
        grid = _view(table, "base2new-grid", R.cell_seeds(groups), {m["label"]: f"#{m['anchor']}" for m in methods})
        grid["blocks"] = _paper_layout(grid)
    missing = [
        {"where": str(r.run_dir.relative_to(runs_dir)), "status": r.status, "log": str(r.log) if r.log else None}
        for g in groups
        for r in g.missing
    ]
    written = []
    for rel, data in R.written_tables(runs_dir):
        settings = (runs_dir / rel).parent / SETTINGS_FILE
        first = settings.read_text().splitlines()[0] if settings.is_file() else ""
        written.append(
            {
                "title": data.get("title", rel),
                "path": rel,
                "command": first[len("# command: ") :] if first.startswith("# command: ") else None,
                "table": _view(_table_from_json(data), _anchor(rel)),
            }
        )
    efficiency = []
    for rel, record in R.efficiency_records(runs_dir):
        for n in dict.fromkeys(r.get("num_classes") for r in record["rows"]):
            t = efficiency_table([r for r in record["rows"] if r.get("num_classes") == n])
            efficiency.append(
                {
                    "title": f"{record.get('model', '')}, {n} classes",
                    "path": rel,
                    "table": _view(t, _anchor(f"{rel}-{n}")),
                }
            )
    token_maps = [{"path": str(p.relative_to(runs_dir)), "data": _png(p)} for p in R.token_rank_maps(runs_dir)]
    other = []
    for p in metrics:
        if p in done_curves:
            continue
        curve = _curve(p, str(p.parent.relative_to(runs_dir)))
        if curve:
            other.append({"path": str(p.parent.relative_to(runs_dir)), "data": curve})
    return {
        "title": f"dra report: {runs_dir.name}",
        "runs_dir": str(runs_dir),
        "written": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "n_done": sum(len(g.done) for g in groups),
        "n_missing": len(missing),
        "grid": grid,
        "missing": missing,
        "written_tables": written,
        "efficiency": efficiency,
        "token_maps": token_maps,
        "methods": methods,
        "other_curves": other,
    }


def render(context: dict) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dra.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("report.html.j2").render(**context)


def write_report(runs_dir: str | Path, output: str | Path | None = None, echo=print) -> Path:
    """Render the page of `runs_dir` into `output` (default: RUNS_DIR/report.html)."""
    out = Path(output) if output is not None else Path(runs_dir) / "report.html"
    html = render(build(runs_dir, echo))
    atomic_write_text(out, html)
    return out
