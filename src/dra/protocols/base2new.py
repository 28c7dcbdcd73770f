"""Base-to-new generalisation: for each dataset and seed, train on base classes, test base and new.

Dassl's semantics: the 16-shot draw happens before the base/new split; the model tested is the last
epoch's; new-class accuracy uses the base-trained adapters with the new class names.

`eval_split: val` (tuning: `dra tune`) scores the same trained model on the draw's validation lists
instead (base.val for the base classes, new.val for the new ones; never a test image), into its own
result file (`result-val.json`) that records the split; a dataset whose val list is its test list
(ImageNet) is refused.
"""

from __future__ import annotations

from omegaconf import DictConfig

from dra import settings as S
from dra.data import subsample_classes
from dra.engine import distributed
from dra.engine.outcome import loss_outcome
from dra.engine.trainer import RunMismatchError
from dra.errors import SettingsError
from dra.methods.registry import method_spec
from dra.protocols.experiment import (
    Experiment,
    dataset_key,
    eval_split,
    eval_suffix,
    limit_per_class,
    reuse,
    seed_twin,
    selection_set,
    write_json,
    write_tables,
)
from dra.report import base2new_table, harmonic_mean
from dra.run_files import result_name


def run_paths(exp: Experiment, cfg: DictConfig, dataset: str, seed: int):
    """(run folder, result file) of one run; `cfg` has the dataset's overrides merged in."""
    name = dataset_key(cfg, dataset)  # a folder dataset goes by <folder>-<hash>
    run_dir = exp.output / "base2new" / exp.run_key(cfg) / name / f"seed{seed}"
    return run_dir, run_dir / result_name(eval_suffix(cfg))


def scored_items(base, new, split: str, name: str) -> tuple[list, list]:
    """The (base, new) images a run is scored on: the test lists, or (`eval_split: val`) the val lists."""
    if split == "test":
        return base.test, new.test
    if getattr(base, "val_is_test", False) or not base.val or not new.val:
        raise SettingsError(
            f"eval_split={split}: {name} has no validation images apart from its test set; tune on a dataset "
            "with its own val split (the pocket world's <name>@dev draws)"
        )
    return base.val, new.val


def run_one(exp: Experiment, cfg: DictConfig, dataset: str, seed: int) -> dict:
    cfg = S.for_dataset(cfg, dataset)
    name = dataset_key(cfg, dataset)
    run_dir, result_path = run_paths(exp, cfg, dataset, seed)
    splits = exp.draw(cfg, dataset, seed)
    base, new = subsample_classes(splits, "base"), subsample_classes(splits, "new")
    split = eval_split(cfg)
    base_eval, new_eval = scored_items(base, new, split, name)
    base_eval = limit_per_class(base_eval, cfg.get("test_per_class"))
    new_eval = limit_per_class(new_eval, cfg.get("test_per_class"))
    inputs = exp.inputs(base.train, base.val, base_eval, new_eval)
    done = reuse(result_path, inputs)
    if done is not None:
        if done.get("eval_split", "test") != split:  # file names keep them apart; a moved file must not pass
            raise RunMismatchError(
                f"{result_path} holds a result on the {done.get('eval_split', 'test')} split, not on {split}; "
                "delete it to evaluate again"
            )
        return {**loss_outcome(done.get("history") or []), **done}  # a result saved before the flag existed
    exp.check_may_run(run_dir)  # a launched grid's tables: a missing result is its job's failure, never copied
    seed_free = method_spec(cfg.method).seed_free
    scored = exp.inputs(base_eval, new_eval) if seed_free else None
    twin = seed_twin(run_dir, result_path.name, scored) if seed_free else None
    if twin is not None:  # zero-shot: another seed's result is this one's (the training images are not read)
        result = {**twin, "seed": seed, "inputs": inputs, "same_as_seed": twin["seed"]}
        if exp.dist.is_main:
            write_json(result_path, result)
        distributed.barrier()
        return result
    model = exp.build(cfg, base.classnames, seed)
    try:
        history = exp.train(
            cfg, model, base.train, seed, run_dir, val_items=selection_set(base), protocol="base2new", dataset=name
        )
        base_acc = exp.accuracy(cfg, model, base_eval, f"{name} base{'' if split == 'test' else ' ' + split}")
        model.set_classnames(new.classnames)
        new_acc = exp.accuracy(cfg, model, new_eval, f"{name} new{'' if split == 'test' else ' ' + split}")
    finally:
        exp.release(model)
    result = {
        "dataset": name,
        "seed": seed,
        "base": base_acc["accuracy"],
        "new": new_acc["accuracy"],
        "hm": harmonic_mean(base_acc["accuracy"], new_acc["accuracy"]),
        "eval_split": split,
        f"base_{split}": base_acc["total"],  # images scored: base_test / new_test, or base_val / new_val
        f"new_{split}": new_acc["total"],
        "base_classes": len(base.classnames),
        "new_classes": len(new.classnames),
        "train_images": len(base.train),
        "test_per_class": cfg.get("test_per_class"),
        **loss_outcome(history),  # first_loss, last_loss, collapsed
        "history": history,
        "inputs": inputs,
        **({"scored_inputs": scored} if seed_free else {}),
    }
    if exp.dist.is_main:
        write_json(result_path, result)
        from dra.engine.metrics_log import log_evaluation

        log_evaluation(
            run_dir,
            len(history),
            {f"base{eval_suffix(cfg)}": base_acc["accuracy"], f"new{eval_suffix(cfg)}": new_acc["accuracy"]},
        )
    distributed.barrier()
    return result


def record_line(r: dict) -> str:
    """One run's line of output: dataset, seed, base / new / HM, and COLLAPSED with its losses when it did."""
    flag = "  COLLAPSED (loss {first_loss:.3f} -> {last_loss:.3f})".format(**r) if r["collapsed"] else ""
    return f"{r['dataset']} seed {r['seed']}: base {r['base']:.2f}  new {r['new']:.2f}  HM {r['hm']:.2f}{flag}"


def run(cfg: DictConfig, backbone=None, echo=print, gather: dict | None = None) -> dict:
    """Every dataset x seed, then the paper's Table 1 (terminal, markdown, CSV, JSON, plot).

    `gather` (launched grids): only read the runs' results, never train (see `Experiment`)."""
    from dra.report import plot_base2new

    exp = Experiment(cfg, backbone, gather=gather)
    records = []
    for dataset in cfg.datasets:
        for seed in cfg.seeds:
            r = run_one(exp, cfg, dataset, int(seed))
            records.append(r)
            if exp.dist.is_main:
                echo(record_line(r))
    table = base2new_table(
        [{k: r[k] for k in ("dataset", "seed", "base", "new", "collapsed")} for r in records],
        title=f"Base-to-new generalisation ({cfg.method}, {cfg.model}"
        + (")" if eval_split(cfg) == "test" else f"; scored on the {eval_split(cfg)} split, not test)"),
        intervals=True,
    )
    out = exp.output / "base2new" / exp.run_key(cfg)
    stem = "base2new" if eval_split(cfg) == "test" else f"base2new-{eval_split(cfg)}"  # never over the test tables
    if exp.dist.is_main:
        write_tables(table, out, stem, cfg, plot=plot_base2new)
        echo(table.to_terminal())
        echo(f"tables: {out}/{stem}.{{md,csv,json,png}}")
    return {"records": records, "table": table, "output": out}
