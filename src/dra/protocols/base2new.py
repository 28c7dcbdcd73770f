"""Base-to-new generalisation: for each dataset and seed, train on base classes, test base and new.

Dassl's semantics: the 16-shot draw happens before the base/new split; the model tested is the last
epoch's; new-class accuracy uses the base-trained adapters with the new class names.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from dra import settings as S
from dra.data import subsample_classes
from dra.engine import distributed
from dra.protocols.experiment import (Experiment, eval_suffix, read_json, selection_set, write_json,
                                      write_tables)
from dra.report import base2new_table, harmonic_mean


def run_one(exp: Experiment, cfg: DictConfig, dataset: str, seed: int) -> dict:
    cfg = S.for_dataset(cfg, dataset)
    run_dir = exp.output / "base2new" / exp.run_key(cfg) / dataset / f"seed{seed}"
    result_path = run_dir / f"result{eval_suffix(cfg)}.json"
    done = read_json(result_path)
    if done is not None:
        return done
    splits = exp.draw(cfg, dataset, seed)
    base, new = subsample_classes(splits, "base"), subsample_classes(splits, "new")
    model = exp.build(cfg, base.classnames, seed)
    try:
        history = exp.train(cfg, model, base.train, seed, run_dir, val_items=selection_set(base),
                            protocol="base2new", dataset=dataset)
        base_acc = exp.accuracy(cfg, model, base.test, f"{dataset} base")
        model.set_classnames(new.classnames)
        new_acc = exp.accuracy(cfg, model, new.test, f"{dataset} new")
    finally:
        exp.release(model)
    result = {"dataset": dataset, "seed": seed, "base": base_acc["accuracy"], "new": new_acc["accuracy"],
              "hm": harmonic_mean(base_acc["accuracy"], new_acc["accuracy"]),
              "base_test": base_acc["total"], "new_test": new_acc["total"],
              "base_classes": len(base.classnames), "new_classes": len(new.classnames),
              "train_images": len(base.train), "test_per_class": cfg.get("test_per_class"), "history": history}
    if exp.dist.is_main:
        write_json(result_path, result)
    distributed.barrier()
    return result


def run(cfg: DictConfig, backbone=None, echo=print) -> dict:
    """Every dataset x seed, then the paper's Table 1 (terminal, markdown, CSV, JSON, plot)."""
    from dra.report import plot_base2new

    exp = Experiment(cfg, backbone)
    records = []
    for dataset in cfg.datasets:
        for seed in cfg.seeds:
            r = run_one(exp, cfg, dataset, int(seed))
            records.append(r)
            if exp.dist.is_main:
                echo(f"{dataset} seed {seed}: base {r['base']:.2f}  new {r['new']:.2f}  HM {r['hm']:.2f}")
    table = base2new_table([{k: r[k] for k in ("dataset", "seed", "base", "new")} for r in records],
                           title=f"Base-to-new generalisation ({cfg.method}, {cfg.model})")
    out = exp.output / "base2new" / exp.run_key(cfg)
    if exp.dist.is_main:
        write_tables(table, out, "base2new", cfg, plot=plot_base2new)
        echo(table.to_terminal())
        echo(f"tables: {out}/base2new.{{md,csv,json,png}}")
    return {"records": records, "table": table, "output": out}


def demo(cfg: DictConfig, echo=print, note=print) -> dict:
    """`dra demo`: base-to-new on the embedded dataset; without downloadable weights, random ones (said so)."""
    from dra.backbones import BackboneError, load_backbone

    try:
        backbone = load_backbone(cfg.model, cfg.pretrained)
    except BackboneError as e:
        if cfg.pretrained is None or Path(str(cfg.pretrained)).suffix:
            raise
        note(f"NOTE: no '{cfg.pretrained}' weights for {cfg.model} here ({e}).\n"
             f"NOTE: running with a RANDOMLY INITIALISED {cfg.model}: the accuracies below are chance-level "
             "and only show that the pipeline runs. For a real experiment run `dra demo` on a machine that "
             "can download the weights, or pass --pretrained /path/to/weights.pt.")
        cfg.pretrained = None
        backbone = load_backbone(cfg.model, None)
    if cfg.pretrained is None:
        cfg.output = str(Path(cfg.output) / "random-weights")
    return run(cfg, backbone=backbone, echo=echo)
