"""Cross-dataset (Table 2) and domain generalisation (Table 3): train once on the source dataset
(ImageNet, all classes, 16 shots), then test on each target with the target's own class names.

Both protocols share the source run folder when their training settings agree (they do by default),
so running both trains once per seed. Each target's result is a file named by the evaluation
settings (`eval_<target>.json`, `eval_<target>-test_per_class2.json`), reused only for those.
"""

from __future__ import annotations

from omegaconf import DictConfig

from dra import settings as S
from dra.data import build_dataset
from dra.engine import distributed
from dra.errors import SettingsError
from dra.protocols.experiment import (
    Experiment,
    dataset_key,
    eval_suffix,
    limit_per_class,
    reuse,
    selection_set,
    write_json,
    write_tables,
)
from dra.report import cross_dataset_table, domain_gen_table
from dra.run_files import eval_name


def seed_paths(exp: Experiment, cfg: DictConfig, seed: int):
    """(run folder, {dataset: result file}) of one seed's source run and its targets' evaluations."""
    source = cfg.source
    src_cfg = S.for_dataset(cfg, source)
    run_dir = exp.output / "transfer" / exp.run_key(src_cfg) / dataset_key(src_cfg, source) / f"seed{seed}"
    wanted = [source, *cfg.targets]
    paths = {t: run_dir / eval_name(dataset_key(S.for_dataset(cfg, t), t), eval_suffix(cfg)) for t in wanted}
    return run_dir, paths


def run_seed(exp: Experiment, cfg: DictConfig, seed: int, targets: dict | None = None) -> list[dict]:
    """Train (or reuse) the source run of one seed and evaluate each target: one record per dataset.
    A saved evaluation is reused only for the images and weights it records (`reuse`); `targets` caches
    each target dataset across seeds."""
    if (cfg.get("eval_split") or "test") != "test":
        raise SettingsError(f"eval_split must be 'test' for {cfg.protocol} (val scores base-to-new runs only)")
    source = cfg.source
    src_cfg = S.for_dataset(cfg, source)
    run_dir, paths = seed_paths(exp, cfg, seed)
    targets = {} if targets is None else targets
    splits = exp.draw(src_cfg, source, seed)
    for target in paths:
        if target == source:
            targets[target] = splits
        elif target not in targets:
            targets[target] = build_dataset(target, cfg.data_root, S.for_dataset(cfg, target).get("split"))
    inputs = {
        t: exp.inputs(splits.train, splits.val, limit_per_class(targets[t].test, cfg.get("test_per_class")))
        for t in paths
    }
    cached = {t: reuse(p, inputs[t]) for t, p in paths.items()}
    missing = [t for t, r in cached.items() if r is None]
    if missing:
        exp.check_may_run(run_dir)
        model = exp.build(src_cfg, splits.classnames, seed)
        try:
            exp.train(
                src_cfg,
                model,
                splits.train,
                seed,
                run_dir,
                val_items=selection_set(splits),
                protocol="transfer",
                dataset=dataset_key(src_cfg, source),
            )
            for target in missing:
                tcfg = S.for_dataset(cfg, target)
                data = targets[target]
                model.set_classnames(data.classnames)
                acc = exp.accuracy(cfg, model, data.test, target)
                cached[target] = {
                    "dataset": dataset_key(tcfg, target),
                    "seed": seed,
                    "accuracy": acc["accuracy"],
                    "test": acc["total"],
                    "test_per_class": cfg.get("test_per_class"),
                    "inputs": inputs[target],
                }
                if exp.dist.is_main:
                    write_json(paths[target], cached[target])
                    from dra.engine.metrics_log import log_evaluation

                    log_evaluation(
                        run_dir,
                        int(src_cfg.train.epochs),
                        {f"{cached[target]['dataset']}{eval_suffix(cfg)}": acc["accuracy"]},
                    )
                distributed.barrier()
        finally:
            exp.release(model)
    return [cached[t] for t in [source, *cfg.targets]]


def run(cfg: DictConfig, backbone=None, echo=print, gather: dict | None = None) -> dict:
    """Every seed's source run and targets, then the table; `gather`: read results only (`Experiment`)."""
    exp = Experiment(cfg, backbone, gather=gather)
    source = cfg.source
    src_cfg = S.for_dataset(cfg, source)
    records = []
    targets: dict = {}  # each target's test list, built once for every seed
    for seed in [int(s) for s in cfg.seeds]:
        for target, record in zip([source, *cfg.targets], run_seed(exp, cfg, seed, targets)):
            records.append(record)
            if exp.dist.is_main:
                echo(f"{target} seed {seed}: {record['accuracy']:.2f}")
    protocol = cfg.protocol
    rows = [{k: r[k] for k in ("dataset", "seed", "accuracy")} for r in records]
    if protocol == "domain_gen":
        table = domain_gen_table(rows, method=cfg.method, intervals=True)
    else:
        table = cross_dataset_table(rows, method=cfg.method, source=source, intervals=True)
    out = exp.output / protocol / exp.run_key(src_cfg)
    if exp.dist.is_main:
        write_tables(table, out, protocol, cfg)
        echo(table.to_terminal())
        echo(f"tables: {out}/{protocol}.{{md,csv,json}}")
    return {"records": records, "table": table, "output": out}
