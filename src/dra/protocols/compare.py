"""`dra compare`: the paper's comparison tables with a row per method.

For each method the protocol's own runner runs (or reuses) its runs: `base2new.run` (Table 1: Base /
New / HM per dataset and the average) or `transfer.run` (cross-dataset, domain generalisation), with that
method's settings (`settings_for(method)`: the protocol file, the method's packaged YAML, the command
line). Every method's settings are checked first (an unknown method or setting is one error before any
run); a method whose run fails becomes a row "failed: <one-line reason>" and the others go on. Methods on the same backbone share one loaded CLIP (each run takes its modules out
again). Tables: `<output>/compare/<protocol>/compare.{md,csv,json}` (+ `.png` for base-to-new), each
cell with its std and 95 % bootstrap interval over seeds; with a reference method, each method's paired
difference to it in `paired.{md,csv,json}` (`dra.report.paired`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from omegaconf import DictConfig

from dra.errors import SettingsError, one_line

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError)

NOTES = {
    "tip_adapter": "tip_adapter / tip_adapter_f on new classes: the cache holds only base classes, so New is "
    "zero-shot CLIP with Tip-Adapter's template.",
    "lfa": "lfa on new classes: the EMA of the map (from the identity), as LFA's two-mapping base-to-new protocol.",
    "proda": "proda: no official code; dra's re-implementation from the paper (docs/baselines.md).",
    "clip_adapter": "clip_adapter: no base-to-new protocol by its authors; trained on base, new classes use the "
    "frozen text of the new names with the adapted image feature.",
}


def failure_reason(e: BaseException) -> str:
    """The one-line reason of a failed method; errors that are not user errors (bugs) keep their type."""
    from dra.data import DataError

    text = one_line(e)
    return text if isinstance(e, (*USER_ERRORS, DataError)) else f"{type(e).__name__}: {text}"


def check_reference(methods: list[str], reference: str | None) -> None:
    """ValueError unless `reference` (when given) is one of the compared methods."""
    if reference is not None and reference not in methods:
        raise SettingsError(
            f"--reference {reference} is not among the compared methods ({', '.join(dict.fromkeys(methods))}); "
            "add it to --methods"
        )


def run(
    methods: list[str],
    settings_for: Callable[[str], DictConfig],
    protocol: str = "base2new",
    echo=print,
    gather: dict | None = None,
    reference: str | None = None,
) -> dict:
    """A row per method; `gather` (a launched grid, `dra.launch`): read the runs' results only, a method
    with a failed job is a row "failed: <reason> (log: <path>)". `reference`: one of `methods`; each
    other method's paired difference to it (same datasets and seeds, `dra.report.paired`) is a second
    table, `paired.{md,csv,json}`; pairs that do not match are a ValueError after the main table."""
    from dra.backbones import load_backbone
    from dra.backbones.wrapping import wrappers
    from dra.io import ensure_writable
    from dra.protocols import base2new, transfer
    from dra.report import Table, method_base2new_table, method_transfer_table, plot_base2new, write
    from dra.settings import method_names

    if not methods:
        raise SettingsError("give at least one method (--methods zeroshot mma ...)")
    unknown = [m for m in methods if m not in method_names()]
    if unknown:
        raise SettingsError(f"unknown method '{unknown[0]}'; choose from {', '.join(method_names())}")
    check_reference(methods, reference)
    # Every method's settings are read and checked before any run: a mistyped setting is one error, not a
    # table of failed rows, and the tables go where --output says.
    settings = {m: settings_for(m) for m in dict.fromkeys(methods)}
    output = ensure_writable(Path(next(iter(settings.values())).output))
    records: dict[str, list[dict]] = {}
    failed: dict[str, str] = {}
    backbones: dict[tuple, object] = {}
    for method, cfg in settings.items():
        try:
            key = (cfg.model, str(cfg.pretrained))
            if key not in backbones and gather is None:  # gathering reads results: no backbone needed
                backbones[key] = load_backbone(cfg.model, cfg.pretrained)
            runner = base2new.run if protocol == "base2new" else transfer.run
            result = runner(cfg, backbone=backbones.get(key), echo=lambda *_: None, gather=gather)
            fields = ("dataset", "seed", "base", "new") if protocol == "base2new" else ("dataset", "seed", "accuracy")
            records[method] = [
                {**{k: r[k] for k in fields}, **({"collapsed": True} if r.get("collapsed") else {})}
                for r in result["records"]
            ]
            echo(f"{method}: done ({len(records[method])} runs, tables {result['output']})")
        except Exception as e:  # noqa: BLE001 - one method's failure must not stop the others
            failed[method] = failure_reason(e)
            echo(f"{method}: failed: {failed[method]}")
            for k, b in list(backbones.items()):
                if wrappers(b.clip):  # a build that failed halfway: never reuse a half-wrapped CLIP
                    del backbones[k]
    order = list(dict.fromkeys(methods))  # rows in the order asked for, failed ones included
    records = {m: records[m] for m in order if m in records}
    failed = {m: failed[m] for m in order if m in failed}
    notes = [text for m, text in NOTES.items() if any(x.startswith(m) for x in records)]
    if protocol == "base2new":
        table = method_base2new_table(
            records,
            failed,
            title="Base-to-new generalisation: methods compared",
            notes=notes,
            order=order,
            intervals=True,
        )
    else:
        title = "Cross-dataset evaluation" if protocol == "cross_dataset" else "Domain generalisation"
        table = method_transfer_table(
            records, failed, title=f"{title}: methods compared", notes=notes, order=order, intervals=True
        )
    out = output / "compare" / protocol
    write(table, out, "compare")
    if protocol == "base2new" and records:
        avg = [r for r in table.rows if r[-1] == "ok"]
        j = table.columns.index("Average Base") if "Average Base" in table.columns else None
        if j is not None:
            summary = Table(
                title="Average over datasets",
                columns=["Method", "Base", "New", "HM"],
                rows=[[r[0], r[j], r[j + 1], r[j + 2]] for r in avg],
            )
            plot_base2new(summary, out / "compare.png", title=table.title)
    echo(table.to_terminal())
    echo(f"tables: {out}/compare.{{md,csv,json{',png' if protocol == 'base2new' else ''}}}")
    result = {"records": records, "failed": failed, "table": table, "output": out}
    if reference is not None:
        from dra.report.paired import paired_table

        result["paired"] = paired = paired_table(records, reference, protocol, failed, order)
        write(paired, out, "paired")
        echo(paired.to_terminal())
        echo(f"paired differences: {out}/paired.{{md,csv,json}}")
    return result
