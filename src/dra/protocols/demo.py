"""`dra demo`, a protocol of its own: base-to-new on real CLIP when its weights load (`configs/demo.yaml`),
else in the pocket world (a SIMULATION, `configs/pocket.yaml`): zero-shot, `adapter` and `dra` on three of the
pocket benchmark's seven datasets (`POCKET_DEMO`: one compositional split, the shortcut task, one shift; 50 test
images per class, and only those are written) with the packaged tiny CLIP, one table (a row per method,
averaged over datasets). The runs (a method on a dataset) go to `DEMO_PROCESSES` worker processes of one torch
thread each, the longest first (`DEMO_THREADS`: one thread is as fast as two for this 6 M-parameter model, and
does not slow down beside another busy process the way oversubscribed threads do); the numbers do not depend
on it. `dra base2new --config pocket` runs the
whole benchmark.

The pocket world runs when no real CLIP weights are available (offline, nothing cached) or with
`--pretrained pocket`.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from omegaconf import OmegaConf

from dra.engine.outcome import COLLAPSED_NOTE
from dra.report import Table, ablation_table, harmonic_mean

METHODS = ("zeroshot", "adapter", "dra")
POCKET_DEMO = ("pocket_colour_shape", "pocket_shortcut", "pocket_dusk")  # three of POCKET_BENCHMARK
DEMO_TEST_PER_CLASS = 50
DEMO_THREADS = 1
DEMO_PROCESSES = 2  # the methods run side by side, one thread each: the 2-core machine's both cores
SIMULATION_LINE = (
    "SIMULATION: the pocket world (generated scenes, a tiny CLIP pretrained by dra itself; "
    "docs/pocket.md). It shows that the pipeline learns, not how CLIP does on real images."
)
REAL_LINE = (
    "Real benchmark: dra base2new --data-root DATA --pretrained openai (CoOp layout, "
    "docs/datasets.md), or dra demo --pretrained /path/to/ViT-B-32.pt"
)


def summarise(records_by_method: dict[str, list[dict]], backbone: str, simulation: bool) -> dict:
    """The demo's JSON: averages over datasets per method, and the chance levels."""
    rows = []
    first = next(iter(records_by_method.values()))
    for method, records in records_by_method.items():
        base = sum(r["base"] for r in records) / len(records)
        new = sum(r["new"] for r in records) / len(records)
        rows.append(
            {"method": method, "base": round(base, 2), "new": round(new, 2), "hm": round(harmonic_mean(base, new), 2)}
        )
    return {
        "simulation": simulation,
        "backbone": backbone,
        "datasets": list(dict.fromkeys(r["dataset"] for r in first)),
        "chance_base": round(sum(100.0 / r["base_classes"] for r in first) / len(first), 2),
        "chance_new": round(sum(100.0 / r["new_classes"] for r in first) / len(first), 2),
        "rows": rows,
        # runs whose training loss ended above where it began (dra.engine.outcome): named, not hidden
        "collapsed": {
            m: [r["dataset"] for r in records if r.get("collapsed")]
            for m, records in records_by_method.items()
            if any(r.get("collapsed") for r in records)
        },
    }


def table_of(summary: dict) -> Table:
    title = (
        (
            "Pocket world base-to-new (SIMULATION), average over "
            if summary["simulation"]
            else "Base-to-new, average over "
        )
        + ", ".join(summary["datasets"])
        + f" — {summary['backbone']}"
    )
    notes = [f"chance: base {summary['chance_base']:.2f}, new {summary['chance_new']:.2f}"]
    for method, datasets in summary.get("collapsed", {}).items():
        notes.append(f"{method}: collapsed on {', '.join(datasets)} ({COLLAPSED_NOTE}); kept in its average")
    if summary["simulation"]:
        notes += [SIMULATION_LINE, REAL_LINE]
    records = [{"seed": 1, **r} for r in summary["rows"]]  # the rows' own HM: computed before rounding
    return ablation_table(records, "method", title, scores=("base", "new", "hm"), label="Method", notes=notes)


def _write_dataset(name: str, test_per_class: int | None) -> None:
    """Write one pocket dataset into the data cache, with the first `test_per_class` test images of each class
    (a worker's task; a no-op once written)."""
    from dra.data.registry import get_spec, resolve_data_root

    resolve_data_root(get_spec(name), None, test_per_class)


@functools.lru_cache(maxsize=1)
def _backbone(model: str, pretrained):
    """The demo's CLIP, loaded once per process and shared by its methods (each run takes its modules out
    again, as in `dra compare`)."""
    from dra.backbones import load_backbone

    return load_backbone(model, pretrained)


def _run_task(method: str, dataset: str, values: dict, overrides: list[str] | None, to_stderr: bool) -> dict:
    """One method's base-to-new run on one dataset (seed 1) on `DEMO_THREADS` threads (a worker's task, or the
    caller's own with one process); returns its record. No tables: `run_pocket_demo` writes them after."""
    import sys

    import torch

    from dra.protocols import base2new
    from dra.protocols.experiment import Experiment
    from dra.settings import load_settings

    cfg = OmegaConf.merge(load_settings("pocket", values, overrides), {"method": method})
    threads = torch.get_num_threads()
    torch.set_num_threads(DEMO_THREADS)
    try:
        exp = Experiment(cfg, _backbone(cfg.model, cfg.pretrained))
        r = base2new.run_one(exp, cfg, dataset, 1)
    finally:
        torch.set_num_threads(threads)
    print(f"[{method}] {base2new.record_line(r)}", file=sys.stderr if to_stderr else sys.stdout, flush=True)
    return r


def _write_tables(method: str, values: dict, overrides: list[str] | None) -> None:
    """The method's base-to-new tables in its run folder, as `dra base2new` writes them (every run is reused)."""
    from dra.protocols import base2new
    from dra.settings import load_settings

    cfg = OmegaConf.merge(load_settings("pocket", values, overrides), {"method": method})
    base2new.run(cfg, backbone=_backbone(cfg.model, cfg.pretrained), echo=lambda line: None)


def run_pocket_demo(
    overrides: list[str] | None = None,
    output: str | None = None,
    device: str | None = None,
    methods=METHODS,
    datasets=POCKET_DEMO,
    processes: int = DEMO_PROCESSES,
    to_stderr: bool = False,
) -> dict:
    """Run the methods on `datasets` (seed 1): with `processes` > 1 in that many worker processes of
    `DEMO_THREADS` threads each: first the datasets are written (only the test images the demo scores), then
    one run per method and dataset, the longest first (DRA's, then the adapter's, the largest datasets first);
    then each method's tables. Returns the summary (see `summarise`); the records do not depend on `processes`."""
    from dra.data.registry import get_spec
    from dra.settings import load_settings

    values = {
        "output": str(Path(output or "runs/demo") / "pocket"),
        "device": device,
        "seeds": [1],
        "datasets": list(datasets),
        "test_per_class": DEMO_TEST_PER_CLASS,
    }
    cfg = load_settings("pocket", values, overrides)  # a bad override fails here, before any worker starts
    cost = {"dra": 2, "adapter": 1, "zeroshot": 0}  # DRA trains about twice as long as the adapter
    tasks = sorted(
        ((m, d) for m in methods for d in datasets),
        key=lambda t: (-cost.get(t[0], 1), -(get_spec(t[1]).num_classes or 0)),
    )
    write = [(name, cfg.get("test_per_class")) for name in datasets]
    if processes <= 1:
        for args in write:
            _write_dataset(*args)
        done = {t: _run_task(*t, values, overrides, to_stderr) for t in tasks}
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")  # no forked torch state in the workers
        with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
            list(pool.map(_write_dataset, *zip(*write)))
            futures = {t: pool.submit(_run_task, *t, values, overrides, to_stderr) for t in tasks}
            done = {t: f.result() for t, f in futures.items()}
    for m in methods:
        _write_tables(m, values, overrides)
    records = {m: [done[(m, d)] for d in datasets] for m in methods}
    return summarise(records, f"{cfg.model} ({cfg.pretrained}, simulation)", simulation=True)


def print_summary(summary: dict, as_json: bool, echo=print) -> None:
    echo(json.dumps(summary, indent=2) if as_json else table_of(summary).to_terminal())


def demo(cfg, overrides: list[str] | None, as_json: bool = False, echo=print, note=print) -> dict:
    """`dra demo`: base-to-new on real CLIP when its weights load (`shapes`, the embedded dataset);
    without them (offline, nothing cached) the pocket world, said so. `--pretrained none` keeps a random
    backbone (chance-level numbers, said so)."""
    from dra.backbones import load_backbone
    from dra.backbones.loading import WeightsUnavailableError
    from dra.protocols import base2new

    backbone = None
    if cfg.pretrained != "pocket":
        try:
            backbone = load_backbone(cfg.model, cfg.pretrained)
        except WeightsUnavailableError as e:  # an unknown model or a bad file stays an error
            note(f"NOTE: no '{cfg.pretrained}' weights for {cfg.model} here ({e}).")
            note(f"NOTE: running the pocket world instead. {SIMULATION_LINE}")
    if backbone is None:
        summary = run_pocket_demo(overrides, cfg.output, cfg.device, to_stderr=as_json)
        print_summary(summary, as_json, echo)
        return summary
    if cfg.pretrained is None:
        note("NOTE: --pretrained none: a RANDOMLY INITIALISED backbone, chance-level numbers.")
        cfg.output = str(Path(cfg.output) / "random-weights")
    res = base2new.run(cfg, backbone=backbone, echo=note if as_json else echo)
    summary = summarise({cfg.method: res["records"]}, f"{cfg.model} ({cfg.pretrained})", False)
    if as_json:
        print_summary(summary, True, echo)
    return summary
