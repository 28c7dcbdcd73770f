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
from dra.protocols.experiment import (
    Experiment,
    dataset_key,
    eval_suffix,
    read_json,
    selection_set,
    write_json,
    write_tables,
)
from dra.report import cross_dataset_table, domain_gen_table


def seed_paths(exp: Experiment, cfg: DictConfig, seed: int):
    """(run folder, {dataset: result file}) of one seed's source run and its targets' evaluations."""
    source = cfg.source
    src_cfg = S.for_dataset(cfg, source)
    run_dir = exp.output / "transfer" / exp.run_key(src_cfg) / dataset_key(src_cfg, source) / f"seed{seed}"
    wanted = [source, *cfg.targets]
    paths = {t: run_dir / f"eval_{dataset_key(S.for_dataset(cfg, t), t)}{eval_suffix(cfg)}.json" for t in wanted}
    return run_dir, paths


def run_seed(exp: Experiment, cfg: DictConfig, seed: int) -> list[dict]:
    """Train (or reuse) the source run of one seed and evaluate each target: one record per dataset."""
    source = cfg.source
    src_cfg = S.for_dataset(cfg, source)
    run_dir, paths = seed_paths(exp, cfg, seed)
    cached = {t: read_json(p) for t, p in paths.items()}
    missing = [t for t, r in cached.items() if r is None]
    if missing:
        exp.check_may_run(run_dir)
        splits = exp.draw(src_cfg, source, seed)
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
                data = splits if target == source else build_dataset(target, cfg.data_root, tcfg.get("split"))
                model.set_classnames(data.classnames)
                acc = exp.accuracy(cfg, model, data.test, target)
                cached[target] = {
                    "dataset": dataset_key(tcfg, target),
                    "seed": seed,
                    "accuracy": acc["accuracy"],
                    "test": acc["total"],
                    "test_per_class": cfg.get("test_per_class"),
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
    for seed in [int(s) for s in cfg.seeds]:
        for target, record in zip([source, *cfg.targets], run_seed(exp, cfg, seed)):
            records.append(record)
            if exp.dist.is_main:
                echo(f"{target} seed {seed}: {record['accuracy']:.2f}")
    protocol = cfg.protocol
    rows = [{k: r[k] for k in ("dataset", "seed", "accuracy")} for r in records]
    if protocol == "domain_gen":
        table = domain_gen_table(rows, method=cfg.method)
    else:
        table = cross_dataset_table(rows, method=cfg.method, source=source)
    out = exp.output / protocol / exp.run_key(src_cfg)
    if exp.dist.is_main:
        write_tables(table, out, protocol, cfg)
        echo(table.to_terminal())
        echo(f"tables: {out}/{protocol}.{{md,csv,json}}")
    return {"records": records, "table": table, "output": out}
