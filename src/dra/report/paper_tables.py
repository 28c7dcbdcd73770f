"""The paper's results tables (1, 2, 3, 6 and the ablations: Tables 4, 5, Fig. 3), built from plain records.

Every builder takes plain records (dicts, one per run and seed) and returns a
:class:`~dra.report.tables.Table`. Accuracies are in percent. Means are over seeds; the std is the
*sample* std (ddof=1) over seeds, 0.0 for a single seed. One ablation builder (`ablation_table`) serves
`dra ablate`, the demo and the Figure 3 sweeps.

Over 400 lines on purpose: the builders share the seed grouping, the failed-method row and the
best-value marks, and read best side by side (each table's conventions are the paper's).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

from dra.data.registry import BASE_TO_NEW_DATASETS, DATASETS, DOMAIN_SHIFT_DATASETS
from dra.engine.outcome import COLLAPSED_NOTE
from dra.errors import SettingsError
from dra.report.metrics import harmonic_mean, mean, mean_std
from dra.report.stats import RESAMPLES, bootstrap_interval, seed_average_summary
from dra.report.tables import Table, is_number

__all__ = [
    "DATASET_NAMES",
    "CROSS_DATASET_TARGETS",
    "DOMAIN_GEN_SOURCE",
    "DOMAIN_GEN_VARIANTS",
    "DOMAIN_GEN_COLUMNS",
    "display_name",
    "base2new_table",
    "method_base2new_table",
    "method_transfer_table",
    "cross_dataset_table",
    "domain_gen_table",
    "efficiency_table",
    "ablation_table",
]

# The registry is the one list of datasets and of the names the paper prints.
DATASET_NAMES: dict[str, str] = {name: spec.title for name, spec in DATASETS.items()}
CROSS_DATASET_TARGETS: tuple[str, ...] = BASE_TO_NEW_DATASETS[1:]
DOMAIN_GEN_SOURCE = "imagenet"
DOMAIN_GEN_VARIANTS: tuple[str, ...] = DOMAIN_SHIFT_DATASETS
# Table 3 headers, as the paper prints them
DOMAIN_GEN_COLUMNS: dict[str, str] = {
    "imagenet": "ImageNet",
    "imagenetv2": "-V2",
    "imagenet_sketch": "-S",
    "imagenet_a": "-A",
    "imagenet_r": "-R",
}


def display_name(dataset: str) -> str:
    """The paper's name for a dataset id; unknown ids are returned unchanged."""
    return DATASET_NAMES.get(dataset, dataset)


# --------------------------------------------------------------------------------------------
# Aggregation helpers
# --------------------------------------------------------------------------------------------


def _require(rec: Mapping[str, Any], keys: Iterable[str]) -> None:
    missing = [k for k in keys if k not in rec]
    if missing:
        raise ValueError(f"record {dict(rec)!r} lacks {missing}")


def _hashable(v: Any) -> Hashable:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):  # numpy / torch values
        return _hashable(v.tolist())
    return v


def _group_by_seed(records: Iterable[Mapping[str, Any]], key_fn, what: str) -> dict[Any, dict[Any, Mapping]]:
    """{key: {seed: record}} in order of first appearance; duplicates (key, seed) are an error."""
    groups: dict[Any, dict[Any, Mapping]] = {}
    for rec in records:
        key = key_fn(rec)
        seed = rec.get("seed")
        per_seed = groups.setdefault(key, {})
        if seed in per_seed:
            raise ValueError(f"duplicate record for {what} {key!r}, seed {seed!r}")
        per_seed[seed] = rec
    return groups


# --------------------------------------------------------------------------------------------
# Table 1: base-to-new
# --------------------------------------------------------------------------------------------


INTERVAL_NOTE = (
    f"mean ± std [95 % interval]: sample std over seeds, percentile bootstrap of the mean over seeds "
    f"({RESAMPLES:,} seeded resamples; the Average's over the per-seed averages over datasets); one seed: neither."
)


def base2new_table(
    records: Iterable[Mapping[str, Any]],
    title: str = "Base-to-new generalisation",
    average: bool = True,
    intervals: bool = False,
) -> Table:
    """Paper Table 1 for one method: a row per dataset, columns Dataset, Base, New, HM.

    Args:
        records: ``{"dataset": id, "seed": int, "base": acc, "new": acc}``, accuracies in
            percent, one per dataset and seed (a repeated (dataset, seed) is an error). A record with
            ``"collapsed": True`` (its training loss ended above where it began, `dra.engine.outcome`)
            stays in the means; the table then has a Collapsed column (collapsed seeds per row) and a
            note naming the seeds.
        title: table caption.
        average: append the "Average" row.
        intervals: add each Base / New cell's 95 % bootstrap interval over seeds (`dra.report.stats`)
            and give the Average row the std and interval of the per-seed averages over datasets
            (when every dataset has the same seeds).

    Per dataset: Base and New are the means over seeds, their std is the *sample* std over
    seeds (ddof=1; 0.0 for one seed), HM is the harmonic mean of the *mean* Base and *mean*
    New. Rows keep the order in which datasets first appear in ``records``; datasets are
    shown by their paper names (unknown ids as given). The Average row is the mean over
    datasets of the per-dataset mean Base (New likewise) and HM = harmonic_mean(avg Base,
    avg New) -- the CoOp/MMA convention, *not* the mean of the per-dataset HMs.
    """
    records = list(records)
    for r in records:
        _require(r, ("dataset", "base", "new"))
    groups = _group_by_seed(records, lambda r: r["dataset"], "dataset")
    rows, stds, n_seeds = [], [], []
    collapsed = {ds: [seed for seed, r in g.items() if r.get("collapsed")] for ds, g in groups.items()}
    for ds, per_seed in groups.items():
        b_mean, b_std = mean_std([r["base"] for r in per_seed.values()])
        n_mean, n_std = mean_std([r["new"] for r in per_seed.values()])
        rows.append([display_name(ds), b_mean, n_mean, harmonic_mean(b_mean, n_mean)])
        stds.append([None, b_std, n_std, None])
        n_seeds.append(len(per_seed))
    cis = [
        [None, *(bootstrap_interval([r[k] for r in g.values()]) if intervals else None for k in ("base", "new")), None]
        for g in groups.values()
    ]
    if average and rows:
        avg_b = mean(r[1] for r in rows)
        avg_n = mean(r[2] for r in rows)
        rows.append(["Average", avg_b, avg_n, harmonic_mean(avg_b, avg_n)])
        stds.append([None, None, None, None])
        cis.append([None, None, None, None])
        n_seeds.append(min(n_seeds))
        for j, key in ((1, "base"), (2, "new")) if intervals else ():
            over = seed_average_summary({d: {s: r[key] for s, r in g.items()} for d, g in groups.items()})
            if over is not None and over.n >= 2:
                stds[-1][j], cis[-1][j] = over.std, over.interval
    notes = []
    if average and rows:
        notes.append(
            "Average: means over datasets of the seed-mean Base and New; "
            "HM = harmonic mean of the averaged Base and New."
        )
    if intervals:
        notes.append(INTERVAL_NOTE)
    columns = ["Dataset", "Base", "New", "HM"]
    if any(collapsed.values()):
        columns.append("Collapsed")
        counts = [len(seeds) for seeds in collapsed.values()]
        for row, n in zip(rows, [*counts, sum(counts)] if len(rows) > len(counts) else counts):
            row.append(n)
        for extra in (stds, cis):
            for row in extra:
                row.append(None)
        notes.append(
            collapsed_note({display_name(ds): [f"seed {s}" for s in seeds] for ds, seeds in collapsed.items()})
        )
    return Table(
        title=title,
        columns=columns,
        rows=rows,
        stds=stds,
        n_seeds=n_seeds,
        notes=notes,
        intervals=cis if intervals else None,
    )


def collapsed_note(runs_by_row: Mapping[Any, Sequence[str]]) -> str:
    """The note naming the collapsed runs of each row ("seed 2", "Pocket-Dusk seed 2"; rows without any left out)."""
    named = "; ".join(f"{row}: {', '.join(runs)}" for row, runs in runs_by_row.items() if runs)
    return f"Collapsed runs, kept in the means ({COLLAPSED_NOTE}): {named}."


def mark_best(rows: list[list[Any]], columns: Iterable[int]) -> list[list[bool]]:
    """True at the highest value of each of `columns` (every tie marked; missing values never)."""
    best = [[False] * len(r) for r in rows]
    for j in columns:
        values = [r[j] for r in rows if is_number(r[j])]
        if values:
            top = max(values)
            for i, r in enumerate(rows):
                best[i][j] = is_number(r[j]) and r[j] == top
    return best


def _failed_row(rows: list, stds: list, n_seeds: list, method: str, width: int, failed: Mapping[str, str]) -> None:
    """Append a method's row without values whose last (Status) cell says why: "failed: <reason>"."""
    rows.append([method] + [None] * (width - 2) + [f"failed: {failed.get(method, 'no results')}"])
    stds.append([None] * width)
    n_seeds.append(None)


def method_base2new_table(
    records: Mapping[str, Iterable[Mapping[str, Any]]],
    failed: Mapping[str, str] | None = None,
    title: str = "Base-to-new generalisation",
    notes: Iterable[str] = (),
    order: list[str] | None = None,
    intervals: bool = False,
) -> Table:
    """Paper Table 1 with a row per method: Base / New / HM for each dataset and the average.

    ``records``: ``{method: [{"dataset", "seed", "base", "new"}, ...]}``; each method's cells are
    :func:`base2new_table`'s (seed means, sample std, HM of the means, the Average row's HM of the
    averaged Base and New). ``failed``: ``{method: one-line reason}``, rows without values whose
    Status says why. The best value of every column is marked. ``intervals``: as in
    :func:`base2new_table` (the cells' 95 % bootstrap intervals over seeds).
    """
    failed = dict(failed or {})
    records = {m: list(r) for m, r in records.items()}
    per_method = {m: base2new_table(r, title=m, intervals=intervals) for m, r in records.items() if r}
    collapsed = {
        m: [f"{display_name(r['dataset'])} seed {r.get('seed')}" for r in rs if r.get("collapsed")]
        for m, rs in records.items()
    }
    datasets: list[str] = []
    for t in per_method.values():
        for label in t.labels:
            if label not in datasets:
                datasets.append(label)
    if "Average" in datasets:  # last
        datasets = [d for d in datasets if d != "Average"] + ["Average"]
    columns = ["Method"] + [f"{d} {c}" for d in datasets for c in ("Base", "New", "HM")] + ["Status"]
    rows, stds, n_seeds, cis = [], [], [], []
    order = list(dict.fromkeys([*records, *failed])) if order is None else order
    for method in order:
        t = per_method.get(method)
        if t is None or method in failed:
            _failed_row(rows, stds, n_seeds, method, len(columns), failed)
            cis.append([None] * len(columns))
            continue
        row, srow, crow = [method], [None], [None]
        for d in datasets:
            if d in t.labels:
                i = t.labels.index(d)
                row += t.rows[i][1:4]
                srow += [t.stds[i][1], t.stds[i][2], None]
                crow += [*(t.intervals[i][1:3] if t.intervals else (None, None)), None]
            else:
                row += [None, None, None]
                srow += [None, None, None]
                crow += [None, None, None]
        rows.append(row + ["ok"])
        stds.append(srow + [None])
        cis.append(crow + [None])
        n_seeds.append(min(t.n_seeds) if t.n_seeds else None)
    table = Table(
        title=title,
        columns=columns,
        rows=rows,
        stds=stds,
        n_seeds=n_seeds,
        notes=[
            "Average: means over datasets of the seed-mean Base and New; HM = harmonic mean of the "
            "averaged Base and New. Best per column marked (bold / *).",
            *([INTERVAL_NOTE] if intervals else []),
            *notes,
            *([collapsed_note(collapsed)] if any(collapsed.values()) else []),
        ],
        intervals=cis if intervals else None,
    )
    table.best = mark_best(rows, range(1, len(columns) - 1))
    return table


def method_transfer_table(
    records: Mapping[str, Iterable[Mapping[str, Any]]],
    failed: Mapping[str, str] | None = None,
    title: str = "Transfer",
    notes: Iterable[str] = (),
    order: list[str] | None = None,
    intervals: bool = False,
) -> Table:
    """Cross-dataset / domain generalisation with a row per method: accuracy per target and the mean
    over targets other than the source (first dataset of each method's records). ``intervals``: each
    cell's 95 % bootstrap interval over seeds (the Average's: over the per-seed means over the targets)."""
    failed = dict(failed or {})
    datasets: list[str] = []
    cells: dict[str, dict[str, tuple[float, float, int]]] = {}
    per_seed_of: dict[str, dict[str, dict[Any, float]]] = {}
    for m, recs in records.items():
        groups = _group_by_seed(list(recs), lambda r: r["dataset"], "dataset")
        for ds, per_seed in groups.items():
            if ds not in datasets:
                datasets.append(ds)
            mu, sd = mean_std([r["accuracy"] for r in per_seed.values()])
            cells.setdefault(m, {})[ds] = (mu, sd, len(per_seed))
            per_seed_of.setdefault(m, {})[ds] = {s: r["accuracy"] for s, r in per_seed.items()}
    columns = ["Method"] + [display_name(d) for d in datasets] + ["Average", "Status"]
    rows, stds, n_seeds, cis = [], [], [], []
    order = list(dict.fromkeys([*records, *failed])) if order is None else order
    for method in order:
        c = cells.get(method)
        if c is None or method in failed:
            _failed_row(rows, stds, n_seeds, method, len(columns), failed)
            cis.append([None] * len(columns))
            continue
        values = [c.get(d, (None, None, 0)) for d in datasets]
        targets = [v[0] for d, v in zip(datasets, values) if d != datasets[0] and v[0] is not None]
        rows.append([method] + [v[0] for v in values] + [mean(targets) if targets else None, "ok"])
        stds.append([None] + [v[1] for v in values] + [None, None])
        n_seeds.append(min(v[2] for v in values if v[0] is not None))
        if intervals:
            mine = per_seed_of[method]
            over = seed_average_summary({d: v for d, v in mine.items() if d != datasets[0]})
            average = (over.std, over.interval) if over is not None and over.n >= 2 else (None, None)
            stds[-1][-2] = average[0]
            cis.append([None] + [bootstrap_interval(list(mine[d].values())) if d in mine else None for d in datasets])
            cis[-1] += [average[1], None]
    table = Table(
        title=title,
        columns=columns,
        rows=rows,
        stds=stds,
        n_seeds=n_seeds,
        notes=[
            f"Average: mean over the targets (not {display_name(datasets[0])})." if datasets else "",
            "Best per column marked (bold / *).",
            *([INTERVAL_NOTE] if intervals else []),
            *notes,
        ],
        intervals=cis if intervals else None,
    )
    table.best = mark_best(rows, range(1, len(columns) - 1))
    return table


# --------------------------------------------------------------------------------------------
# Tables 2 and 3: one row per method, one column per evaluation dataset
# --------------------------------------------------------------------------------------------


def _per_method_dataset(
    records: list[Mapping[str, Any]], method: str
) -> tuple[list[str], dict[str, dict[str, tuple[float, float, int]]], list[str]]:
    """Methods in appearance order, {method: {dataset: (mean, std, n)}}, datasets in appearance order."""
    for r in records:
        _require(r, ("dataset", "accuracy"))
    groups = _group_by_seed(records, lambda r: (r.get("method", method), r["dataset"]), "(method, dataset)")
    methods: list[str] = []
    datasets: list[str] = []
    cells: dict[str, dict[str, tuple[float, float, int]]] = {}
    for (m, ds), per_seed in groups.items():
        if m not in methods:
            methods.append(m)
        if ds not in datasets:
            datasets.append(ds)
        mu, sd = mean_std([r["accuracy"] for r in per_seed.values()])
        cells.setdefault(m, {})[ds] = (mu, sd, len(per_seed))
    return methods, cells, datasets


def _method_table(
    records: Iterable[Mapping[str, Any]],
    order: list[str],
    averaged: set[str],
    names: Mapping[str, str],
    avg_label: str,
    title: str,
    method: str,
    note: str,
    intervals: bool = False,
) -> Table:
    records = list(records)
    methods, cells, _ = _per_method_dataset(records, method)
    rows, stds, n_seeds, cis = [], [], [], []
    for m in methods:
        row: list[Any] = [m]
        srow: list[float | None] = [None]
        counts = []
        avg_vals = []
        for ds in order:
            c = cells[m].get(ds)
            row.append(None if c is None else c[0])
            srow.append(None if c is None else c[1])
            if c is not None:
                counts.append(c[2])
                if ds in averaged:
                    avg_vals.append(c[0])
        row.append(mean(avg_vals) if avg_vals else None)
        srow.append(None)
        if intervals:  # each cell's interval over seeds; the average's over the per-seed averages
            mine = [r for r in records if r.get("method", method) == m]
            values = {ds: {r["seed"]: r["accuracy"] for r in mine if r["dataset"] == ds} for ds in order}
            over = seed_average_summary({ds: v for ds, v in values.items() if ds in averaged and v})
            cis.append([None, *(bootstrap_interval(list(values[ds].values())) for ds in order), over and over.interval])
            srow[-1] = over.std if over is not None and over.n >= 2 else None
        rows.append(row)
        stds.append(srow)
        n_seeds.append(min(counts) if counts else None)
    columns = ["Method"] + [names.get(ds, ds) for ds in order] + [avg_label]
    notes = [note, *([INTERVAL_NOTE] if intervals else [])]
    return Table(
        title=title,
        columns=columns,
        rows=rows,
        stds=stds,
        n_seeds=n_seeds,
        notes=notes,
        intervals=cis if intervals else None,
    )


def cross_dataset_table(
    records: Iterable[Mapping[str, Any]],
    title: str = "Cross-dataset evaluation",
    method: str = "DRA",
    source: str = "imagenet",
    intervals: bool = False,
) -> Table:
    """Paper Table 2: the source column first, then the targets, then "Average".

    Args:
        records: ``{"dataset": id, "seed": int, "accuracy": acc}`` (percent); an optional
            ``"method"`` key gives one row per method (in order of appearance), otherwise the
            single row is labelled ``method``.
        source: the training dataset, shown first and left out of the Average.

    Targets follow the paper's order (Caltech101 ... UCF101), then unknown ids in order of
    appearance; only datasets present in ``records`` get a column. Cells are means over
    seeds (sample std kept in ``stds``); Average = mean of the row's target cells (the source
    excluded), over the targets it has. ``intervals``: each cell's 95 % bootstrap interval over
    seeds, and the Average's std and interval over the per-seed averages (when the targets share seeds).
    """
    records = list(records)
    present = list(dict.fromkeys(r["dataset"] for r in records if "dataset" in r))
    order = [source] if source in present else []
    order += [d for d in CROSS_DATASET_TARGETS if d in present and d != source]
    order += [d for d in present if d not in order]
    targets = {d for d in order if d != source}
    return _method_table(
        records,
        order,
        targets,
        DATASET_NAMES,
        "Average",
        title,
        method,
        note=f"Average: mean over the target datasets (source {display_name(source)} excluded).",
        intervals=intervals,
    )


def domain_gen_table(
    records: Iterable[Mapping[str, Any]],
    title: str = "Domain generalisation",
    method: str = "DRA",
    intervals: bool = False,
) -> Table:
    """Paper Table 3: ImageNet, -V2, -S, -A, -R, Avg.

    Args:
        records: ``{"dataset": id, "seed": int, "accuracy": acc}`` with ids ``imagenet``,
            ``imagenetv2``, ``imagenet_sketch``, ``imagenet_a``, ``imagenet_r`` (any other id
            is an error); optional ``"method"`` as in :func:`cross_dataset_table`.

    Cells are means over seeds; Avg = mean of the four variants only (ImageNet excluded),
    over those present.
    """
    records = list(records)
    known = (DOMAIN_GEN_SOURCE,) + DOMAIN_GEN_VARIANTS
    unknown = sorted({r["dataset"] for r in records if r.get("dataset") not in known})
    if unknown:
        raise SettingsError(f"domain generalisation datasets are {known}; got {unknown}")
    present = {r["dataset"] for r in records}
    order = [d for d in known if d in present]
    return _method_table(
        records,
        order,
        set(DOMAIN_GEN_VARIANTS),
        DOMAIN_GEN_COLUMNS,
        "Avg",
        title,
        method,
        note="Avg: mean over the four ImageNet variants (ImageNet excluded).",
        intervals=intervals,
    )


# --------------------------------------------------------------------------------------------
# Table 6: efficiency
# --------------------------------------------------------------------------------------------

_EFF_FIELDS = [
    ("trainable_params", "Trainable params", ",d"),
    ("epochs", "Epochs", "d"),
    ("train_images_per_s", "Train (img/s)", ".2f"),
    ("infer_images_per_s", "Inference (img/s)", ".2f"),
    ("peak_memory_mb", "Peak memory (MB)", ".1f"),
    ("hm", "HM (%)", ".2f"),
]
_EFF_RATIOS = [
    ("train_images_per_s", "Train ×ZS"),
    ("infer_images_per_s", "Inference ×ZS"),
    ("peak_memory_mb", "Memory ×ZS"),
]


def efficiency_table(
    rows: Iterable[Mapping[str, Any]],
    title: str = "Computational efficiency",
    reference: str = "zeroshot",
) -> Table:
    """Paper Table 6: one row per method.

    Args:
        rows: ``{"method", "trainable_params", "train_images_per_s", "infer_images_per_s",
            "peak_memory_mb"}``; optional ``"epochs"`` and ``"hm"`` add the paper's Epoch and
            HM columns. Missing or ``None`` values are shown as "-".
        reference: the method the ratio columns divide by (the zero-shot CLIP row).

    A row's ``train_x_zs_infer`` (training over zero-shot inference images/s measured in the same
    rounds, `dra.efficiency.measure`) fills its ``Train ×ZS`` cell.
    When a row's ``method`` equals ``reference``, ratio columns ``Train ×ZS``,
    ``Inference ×ZS`` and ``Memory ×ZS`` are added: each value divided by the reference
    row's (``None`` where either is missing or the reference is 0, e.g. zero-shot has no
    training throughput).
    """
    rows = list(rows)
    for r in rows:
        _require(r, ("method",))
    fields = [
        f
        for f in _EFF_FIELDS
        if f[0] in ("trainable_params", "train_images_per_s", "infer_images_per_s", "peak_memory_mb")
        or any(r.get(f[0]) is not None for r in rows)
    ]
    ref = next((r for r in rows if r["method"] == reference), None)
    columns = ["Method"] + [f[1] for f in fields]
    formats = {f[1]: f[2] for f in fields}
    if ref is not None:
        columns += [c for _, c in _EFF_RATIOS]
    out_rows = []
    for r in rows:
        row: list[Any] = [r["method"]]
        for key, _, _ in fields:
            v = r.get(key)
            if v is not None and key in ("trainable_params", "epochs"):
                v = int(v)
            elif v is not None:
                v = float(v)
            row.append(v)
        if ref is not None:
            for key, _ in _EFF_RATIOS:
                if key == "train_images_per_s" and r.get("train_x_zs_infer") is not None:
                    row.append(float(r["train_x_zs_infer"]))  # over zero-shot inference of the same rounds
                    continue
                v, base = r.get(key), ref.get(key)
                row.append(float(v) / float(base) if v is not None and base not in (None, 0) else None)
        out_rows.append(row)
    notes = [f"×ZS: ratio to the {reference!r} row."] if ref is not None else []
    if ref is not None and any(r.get("train_x_zs_infer") is not None for r in rows):
        notes.append(f"Train ×ZS: training images/s over {reference!r} inference images/s of the same rounds.")
    return Table(title=title, columns=columns, rows=out_rows, formats=formats, notes=notes)


# --------------------------------------------------------------------------------------------
# Ablations (Tables 4, 5, Figure 3)
# --------------------------------------------------------------------------------------------


ABLATION_SCORES = {"base2new": ("base", "new"), "transfer": ("source", "target")}


def ablation_table(
    records: Iterable[Mapping[str, Any]],
    x_key: str,
    title: str | None = None,
    scores: Sequence[str] = ABLATION_SCORES["base2new"],
    label: str | None = None,
    notes: Iterable[str] = (),
    intervals: bool = False,
) -> Table:
    """One row per value of a swept setting (r, h, K, rank ratios, a named setting, a method): the mean
    of each score over seeds (sample std in ``stds``); with the scores ``base`` and ``new``, the HM of the
    means. The one ablation table: `dra ablate`'s suites, the Figure 3 sweeps and the demo's methods.

    Args:
        records: ``{x_key: value, "seed": int, <score>: acc, ...}``; lists as values (e.g. rank
            ratios) are fine. A record with ``"diverged": True`` (its training diverged) is left out of
            the means and named in the notes; a value whose every seed diverged gets a row of NaN. A record
            with ``"collapsed": True`` stays in the means; the table then has a Collapsed column (collapsed
            seeds per row) and a note naming them.
        x_key: the swept key; it names the first column unless ``label`` does.
        scores: the record keys averaged, one column each (capitalised): ``("base", "new")`` (then HM
            is added), ``("source", "target")`` (``ABLATION_SCORES``), or ``("base", "new", "hm")``
            for records that carry their own HM (the demo's, computed before rounding).
        notes: the table's notes, before the divergence notes.
        intervals: add each score's 95 % bootstrap interval of the mean over seeds (`dra.report.stats`).

    Rows are sorted by value when every value is a number, otherwise kept in order of first
    appearance. A repeated (value, seed) is an error.
    """
    records = list(records)
    for r in records:
        _require(r, (x_key,) if r.get("diverged") else (x_key, *scores))
    groups = _group_by_seed(records, lambda r: _hashable(r[x_key]), x_key)
    keys = list(groups)
    if all(is_number(k) for k in keys):
        keys.sort()
    with_hm = tuple(scores) == ABLATION_SCORES["base2new"]
    rows, stds, n_seeds, diverged_notes, cis = [], [], [], [], []
    collapsed = {}
    for k in keys:
        value = list(k) if isinstance(k, tuple) else k
        mine = [r for r in groups[k].values() if not r.get("diverged")]
        diverged = [seed for seed, r in groups[k].items() if r.get("diverged")]
        if diverged:
            diverged_notes.append(f"{value}: training diverged (non-finite loss) in seed(s) {diverged}, left out.")
        collapsed[str(value)] = [seed for seed, r in groups[k].items() if r.get("collapsed")]
        nan = float("nan")
        stats = [mean_std([r[s] for r in mine]) if mine else (nan, nan) for s in scores]
        row, std = [value, *(m for m, _ in stats)], [None, *(s for _, s in stats)]
        if with_hm:
            row.append(harmonic_mean(stats[0][0], stats[1][0]))
            std.append(None)
        rows.append(row)
        stds.append(std)
        cis.append([None, *(bootstrap_interval([r[s] for r in mine]) for s in scores)] + [None] * with_hm)
        n_seeds.append(len(mine))
    columns = [label or x_key, *(s.upper() if s == "hm" else s.capitalize() for s in scores)]
    columns += ["HM"] if with_hm else []
    if any(collapsed.values()):
        columns.append("Collapsed")
        for row, std, ci, seeds in zip(rows, stds, cis, collapsed.values()):
            row.append(len(seeds))
            std.append(None)
            ci.append(None)
        diverged_notes.append(collapsed_note({v: [f"seed {s}" for s in seeds] for v, seeds in collapsed.items()}))
    return Table(
        title=title if title is not None else f"Ablation over {x_key}",
        columns=columns,
        rows=rows,
        stds=stds,
        n_seeds=n_seeds,
        notes=[*notes, *([INTERVAL_NOTE] if intervals else []), *diverged_notes],
        intervals=cis if intervals else None,
    )
