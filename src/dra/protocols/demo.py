"""`dra demo`, a protocol of its own: base-to-new on real CLIP when its weights load (`configs/demo.yaml`),
else in the pocket world (a SIMULATION, `configs/pocket.yaml`): zero-shot, `adapter` and `dra` on three of the
pocket benchmark's seven datasets (`POCKET_DEMO`: one compositional split, the shortcut task, one shift; 50 test
images per class) with the packaged tiny CLIP, one table (a row per method, averaged over datasets). The
methods run side by side in `DEMO_PROCESSES` worker processes of one torch thread each (`DEMO_THREADS`: one
thread is as fast as two for this 6 M-parameter model, and does not slow down beside another busy process the
way oversubscribed threads do); the numbers do not depend on it. `dra base2new --config pocket` runs the
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


def _write_dataset(name: str) -> None:
    """Write one pocket dataset into the data cache (a worker's task; a no-op once written)."""
    from dra.data.registry import get_spec, resolve_data_root

    resolve_data_root(get_spec(name), None)


@functools.lru_cache(maxsize=1)
def _backbone(model: str, pretrained):
    """The demo's CLIP, loaded once per process and shared by its methods (each run takes its modules out
    again, as in `dra compare`)."""
    from dra.backbones import load_backbone

    return load_backbone(model, pretrained)


def _run_method(method: str, values: dict, overrides: list[str] | None, to_stderr: bool) -> list[dict]:
    """One method's base-to-new runs on the demo's datasets, on `DEMO_THREADS` threads (a worker's task,
    or the caller's own with one process); returns the per-dataset records."""
    import sys

    import torch

    from dra.protocols import base2new
    from dra.settings import load_settings

    cfg = load_settings("pocket", values, overrides)
    stream = sys.stderr if to_stderr else sys.stdout
    threads = torch.get_num_threads()
    torch.set_num_threads(DEMO_THREADS)
    try:
        res = base2new.run(
            OmegaConf.merge(cfg, {"method": method}),
            backbone=_backbone(cfg.model, cfg.pretrained),
            echo=lambda line: print(f"[{method}] {line}", file=stream, flush=True) if " seed " in line else None,
        )
    finally:
        torch.set_num_threads(threads)
    return res["records"]


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
    `DEMO_THREADS` threads each (first the datasets are written, then one method per worker, the trained
    ones first); returns the summary (see `summarise`). The records do not depend on `processes`."""
    from dra.settings import load_settings

    values = {
        "output": str(Path(output or "runs/demo") / "pocket"),
        "device": device,
        "seeds": [1],
        "datasets": list(datasets),
        "test_per_class": DEMO_TEST_PER_CLASS,
    }
    cfg = load_settings("pocket", values, overrides)  # a bad override fails here, before any worker starts
    order = sorted(methods, key=lambda m: m == "zeroshot")  # the long runs first, zero-shot fills in
    if processes <= 1:
        for name in datasets:
            _write_dataset(name)
        done = {m: _run_method(m, values, overrides, to_stderr) for m in order}
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")  # no forked torch state in the workers
        with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
            list(pool.map(_write_dataset, datasets))
            futures = {m: pool.submit(_run_method, m, values, overrides, to_stderr) for m in order}
            done = {m: f.result() for m, f in futures.items()}
    records = {m: done[m] for m in methods}
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
