"""Base-to-new generalisation: for each dataset and seed, train on base classes, test base and new.

Dassl's semantics: the 16-shot draw happens before the base/new split; the model tested is the last
epoch's; new-class accuracy uses the base-trained adapters with the new class names.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from dra import settings as S
from dra.data import build_dataset, fewshot, subsample_classes
from dra.engine import distributed
from dra.protocols.experiment import Experiment, read_json, write_json
from dra.report import base2new_table, harmonic_mean


def run_one(exp: Experiment, cfg: DictConfig, dataset: str, seed: int) -> dict:
    cfg = S.for_dataset(cfg, dataset)
    run_dir = exp.output / "base2new" / exp.run_key(cfg) / dataset / f"seed{seed}"
    done = read_json(run_dir / "result.json")
    if done is not None:
        return done
    splits = fewshot(build_dataset(dataset, cfg.data_root), cfg.shots, seed)
    base, new = subsample_classes(splits, "base"), subsample_classes(splits, "new")
    model = exp.build(cfg, base.classnames, seed)
    try:
        history = exp.train(cfg, model, base.train, seed, run_dir, protocol="base2new", dataset=dataset)
        base_acc = exp.accuracy(cfg, model, base.test, f"{dataset} base")
        model.set_classnames(new.classnames)
        new_acc = exp.accuracy(cfg, model, new.test, f"{dataset} new")
    finally:
        exp.release(model)
    result = {"dataset": dataset, "seed": seed, "base": base_acc["accuracy"], "new": new_acc["accuracy"],
              "hm": harmonic_mean(base_acc["accuracy"], new_acc["accuracy"]),
              "base_test": base_acc["total"], "new_test": new_acc["total"],
              "base_classes": len(base.classnames), "new_classes": len(new.classnames),
              "train_images": len(base.train), "history": history}
    if exp.dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "result.json", result)
    distributed.barrier()
    return result


def run(cfg: DictConfig, backbone=None, echo=print) -> dict:
    """Every dataset x seed, then the paper's Table 1 (terminal, markdown, CSV, JSON, plot)."""
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
        write_tables(table, out, "base2new", cfg)
        echo(table.to_terminal())
        echo(f"tables: {out}/base2new.{{md,csv,json,png}}")
    return {"records": records, "table": table, "output": out}


def write_tables(table, out: Path, stem: str, cfg: DictConfig) -> None:
    from omegaconf import OmegaConf

    from dra.report import plot_base2new, write

    out.mkdir(parents=True, exist_ok=True)
    write(table, out, stem)
    (out / "settings.yaml").write_text(OmegaConf.to_yaml(cfg))
    if stem == "base2new":
        plot_base2new(table, out / f"{stem}.png")
