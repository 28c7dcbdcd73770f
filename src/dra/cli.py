"""The `dra` command line (Typer). Commands are thin: they build settings and call the library.

Options that take several values accept both `--seeds 1 2 3` and `--seeds 1 --seeds 2 --seeds 3`.
Trailing `key=value` arguments override any setting of the YAML (e.g. `train.epochs=1 dra.rank=16`).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer

from dra.data.cli import app as data_app
from dra.errors import one_line

app = typer.Typer(
    name="dra",
    help="Dynamic Rank Adaptation for CLIP: train, evaluate and benchmark adapters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data", help="Check dataset layouts and print few-shot draws.")
pocket_app = typer.Typer(
    no_args_is_help=True, help="The pocket world (a simulation): a tiny CLIP dra pretrains itself."
)
app.add_typer(pocket_app, name="pocket")


@contextlib.contextmanager
def _errors():
    """The one error handler of every command: a user-facing error ends as one `error:` line on stderr
    and exit code 1 (settings, data, weights, checkpoints, run folders, a diverged run, an unwritable
    output). Anything else is a bug and keeps its traceback."""
    from dra.backbones import BackboneError
    from dra.checkpoints import CheckpointError
    from dra.data import DataError
    from dra.engine.trainer import RunBusyError, RunMismatchError, TrainingDivergedError
    from dra.errors import one_line
    from dra.protocols.experiment import RunMissingError

    try:
        yield
    except (
        DataError,
        BackboneError,
        CheckpointError,
        RunMismatchError,
        RunBusyError,
        TrainingDivergedError,
        RunMissingError,
        ValueError,
        OSError,
    ) as e:
        typer.echo(f"error: {one_line(e)}", err=True)
        raise typer.Exit(code=1) from None


@app.command()
def info(
    model: str = typer.Option("ViT-B-16", help="open_clip model name (ViT-B-16, ViT-B-32, ViT-L-14, ...)."),
    method: str = typer.Option("dra", help="Any method of `dra.methods.METHODS` (dra, adapter, mma, clip_lora, ...)."),
    start_layer: int = typer.Option(None, "--start-layer", help="h: first adapted block (1-based)."),
    rank: int = typer.Option(None, help="r: adapter / LoRA rank."),
    branches: str = typer.Option(None, help="image, text or both."),
) -> None:
    """Print the trainable parameter counts as JSON (random weights: nothing is downloaded)."""
    import dataclasses
    import json

    from dra.backbones import load_backbone
    from dra.methods import METHODS, build_method

    with _errors():
        if method not in METHODS:
            raise ValueError(f"unknown method '{method}'; choose one of {sorted(METHODS)}")
        config_class = METHODS[method].config_class
        given = {
            k: v for k, v in {"start_layer": start_layer, "rank": rank, "branches": branches}.items() if v is not None
        }
        fields = {f.name for f in dataclasses.fields(config_class)} if config_class else set()
        unused = sorted(set(given) - fields)
        if unused:
            raise ValueError(f"method {method} has no setting {unused[0]}")
        config = config_class(**given) if config_class else None
        net = build_method(method, load_backbone(model, pretrained=None), ["class"], config)
    out = {**net.parameter_counts(), "method": method, "model": model}
    if hasattr(net, "adapters"):
        out["adapted_blocks"] = {t: sorted(int(k) for k in b) for t, b in net.adapters.items()}
    if config is not None:
        out["config"] = net.method_config()
    typer.echo(json.dumps(out, indent=2))


@app.command("import-checkpoint")
def import_checkpoint(
    source: Path = typer.Argument(..., help="The official checkpoint (Dassl's model.pth.tar-N)."),
    method: str = typer.Option(..., help="The method it was trained with (importable: mma, coop, maple)."),
    model: str = typer.Option("ViT-B-16", help="open_clip model name of its backbone."),
    pretrained: str = typer.Option("openai", help="Backbone weights: 'openai', a file, or 'none'."),
    output: Path = typer.Option(..., help="The dra checkpoint to write (OUT.safetensors + OUT.json)."),
    classnames: Path = typer.Option(
        None, help="Class names, one per line (default: read from the checkpoint's tokenized_prompts)."
    ),
) -> None:
    """Import an MMA, CoOp or MaPLe checkpoint of the official code as a dra checkpoint; the file is
    read as tensors only (never unpickled with code)."""
    import json

    from dra.checkpoints.convert import import_checkpoint as run_import
    from dra.io import ensure_writable
    from dra.labels import read_classnames

    with _errors():
        ensure_writable(Path(output).expanduser().absolute().parent)  # before any work
        names = read_classnames(classnames) if classnames else None
        weights = _pretrained(pretrained)
        result = run_import(source, method, model, (weights or None), output, names)
    typer.echo(json.dumps(result, indent=2))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def efficiency(ctx: typer.Context) -> None:
    """Paper Table 6 on this device: trainable params, train/inference images/s, peak memory (--help: options).

    The same options and defaults as benchmarks/efficiency.py (both are `dra.benchmark.cli.main`).
    """
    from dra.benchmark.cli import main

    code = main(list(ctx.args), prog="dra efficiency")
    if code:
        raise typer.Exit(code=code)


# -- protocol commands --------------------------------------------------------------------------
VARIADIC = ("--seeds", "--datasets", "--dataset", "--methods", "--targets", "--suites", "--suite")

OVERRIDES = typer.Argument(None, help="Setting overrides as key=value, e.g. train.epochs=1 dra.rank=16.")
METHOD = typer.Option(
    None,
    help="dra, adapter, zeroshot, coop, cocoop, kgcoop, maple, tcp, mma, clip_lora, clip_adapter, tip_adapter, tip_adapter_f "
    "(default: the settings file's); picks configs/methods/<method>.yaml.",
)
MODEL = typer.Option(None, help="open_clip model name, e.g. ViT-B-16.")
PRETRAINED = typer.Option(None, help="'openai' (or another open_clip tag), a checkpoint file, or 'none'.")
DATA_ROOT = typer.Option(None, "--data-root", help="Folder holding the datasets in CoOp's layout.")
SEEDS = typer.Option(None, "--seeds", "--seed", help="Seeds (default: the settings file's).")
SHOTS = typer.Option(None, help="Images per class in the few-shot training set (an integer >= 1), or 'all'.")
OUTPUT = typer.Option(None, help="Output folder (default: runs).")
DEVICE = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: cuda when available).")
CONFIG = typer.Option(None, "--config", help="A settings YAML to start from instead of the packaged one.")
SPLIT = typer.Option(
    None, "--split", help="CoOp split file (JSON) for a folder dataset (default: a seeded 50/20/30 split)."
)
TARGETS = typer.Option(None, "--targets", help="Target datasets (default: the paper's).")
LAUNCHER = typer.Option(
    None,
    "--launcher",
    help="local (default: in this process, one run after another; with --jobs N: N processes), slurm (one job "
    "array through submitit), submitit-local (submitit's local executor: the SLURM path without SLURM).",
)
JOBS = typer.Option(None, "--jobs", help="Runs at once as separate processes (local launchers).")
DRY_RUN = typer.Option(
    False, "--dry-run", help="Print the runs that would be launched (and the sbatch file); run nothing."
)
PARTITION = typer.Option(None, "--partition", help="SLURM partition (slurm.partition).")
TIME = typer.Option(None, "--time", help="SLURM time limit of one run, minutes (slurm.time_min).")
GPUS = typer.Option(None, "--gpus", help="GPUs per SLURM job (slurm.gpus_per_node).")
CPUS = typer.Option(None, "--cpus", help="CPUs per SLURM job, also its torch threads (slurm.cpus_per_task).")
MEM = typer.Option(None, "--mem", help="Memory per SLURM job, GB (slurm.mem_gb).")
ARRAY_PARALLELISM = typer.Option(
    None, "--array-parallelism", help="SLURM jobs of the array running at once (slurm.array_parallelism)."
)
SBATCH = typer.Option(
    None,
    "--sbatch",
    help="Extra sbatch option KEY=VALUE (repeat the flag), e.g. --sbatch account=lab --sbatch qos=high.",
)


def expand_variadic(argv: list[str]) -> list[str]:
    """`--seeds 1 2 3` -> `--seeds 1 --seeds 2 --seeds 3` (click options take one value each)."""
    out: list[str] = []
    current = None
    for token in argv:
        if token.startswith("-"):
            current = token if token in VARIADIC else None
            out.append(token)
        elif current and "=" not in token and out and out[-1] != current:
            out += [current, token]
        else:
            out.append(token)
    return out


def _pretrained(value: str | None) -> str | None:
    return "" if value is not None and value.lower() in ("none", "random", "") else value


def _slurm(partition, time, gpus, cpus, mem, array_parallelism, sbatch) -> dict | None:
    """The `slurm` settings given on the command line (None: the settings file's)."""
    given = {
        "partition": partition,
        "time_min": time,
        "gpus_per_node": gpus,
        "cpus_per_task": cpus,
        "mem_gb": mem,
        "array_parallelism": array_parallelism,
    }
    out = {k: v for k, v in given.items() if v is not None}
    for item in sbatch or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--sbatch takes KEY=VALUE (e.g. --sbatch account=lab), got {item!r}")
        out.setdefault("sbatch", {})[key.strip()] = value.strip()
    return out or None


def _launched(run_in_process, launch, gather, options) -> None:
    """Today's in-process path, or: launch the grid (dra.launch), then build the tables from the run folders."""
    if options.in_process:
        run_in_process()
        return
    failures = launch()
    if failures is not None:  # None: a dry run
        gather(failures)


def _settings(name: str, config: Path | None, overrides: list[str] | None, pretrained: str | None = None, **values):
    """The settings of a command; `pretrained` is the raw --pretrained value ('none' = random weights)."""
    from dra.settings import load_settings

    cfg = load_settings(str(config) if config else name, values, overrides)
    pretrained = _pretrained(pretrained)
    if pretrained is not None:
        cfg.pretrained = pretrained or None  # "" (--pretrained none) = random weights
    return cfg


@app.command("settings")
def show_settings(
    overrides: list[str] = OVERRIDES,
    method: str = typer.Option("dra", help="The method whose recipe to show."),
    protocol: str = typer.Option("base2new", help="base2new, cross_dataset or domain_gen."),
    dataset: str = typer.Option("imagenet", help="The dataset (its per-dataset overrides are merged in)."),
) -> None:
    """Print the fully merged settings a run of METHOD on DATASET under PROTOCOL uses (YAML)."""
    from dra.recipe import run_settings, to_yaml

    with _errors():
        typer.echo(to_yaml(run_settings(method, protocol.replace("-", "_"), dataset, overrides)), nl=False)


@app.command()
def base2new(
    overrides: list[str] = OVERRIDES,
    method: str = METHOD,
    model: str = MODEL,
    pretrained: str = PRETRAINED,
    data_root: str = DATA_ROOT,
    datasets: list[str] = typer.Option(None, "--datasets", "--dataset", help="Datasets (default: all 11)."),
    seeds: list[int] = SEEDS,
    shots: str = SHOTS,
    output: str = OUTPUT,
    device: str = DEVICE,
    config: Path = CONFIG,
    split: str = SPLIT,
    launcher: str = LAUNCHER,
    jobs: int = JOBS,
    dry_run: bool = DRY_RUN,
    partition: str = PARTITION,
    time: int = TIME,
    gpus: int = GPUS,
    cpus: int = CPUS,
    mem: int = MEM,
    array_parallelism: int = ARRAY_PARALLELISM,
    sbatch: list[str] = SBATCH,
) -> None:
    """Base-to-new generalisation (paper Table 1): train on base classes, test base and new, print the table."""
    from dra.launch.grid import LaunchOptions, launch_protocol
    from dra.protocols import base2new as protocol

    with _errors():
        options = LaunchOptions(launcher, jobs, dry_run)
        cfg = _settings(
            "base2new",
            config,
            overrides,
            method=method,
            model=model,
            pretrained=pretrained,
            data_root=data_root,
            datasets=datasets or None,
            seeds=seeds or None,
            shots=shots,
            output=output,
            device=device,
            split=split,
            slurm=_slurm(partition, time, gpus, cpus, mem, array_parallelism, sbatch),
        )
        _launched(
            lambda: protocol.run(cfg, echo=typer.echo),
            lambda: launch_protocol(cfg, options, typer.echo),
            lambda failures: protocol.run(cfg, echo=typer.echo, gather=failures),
            options,
        )


@app.command()
def compare(
    overrides: list[str] = OVERRIDES,
    methods: list[str] = typer.Option(
        ..., "--methods", help="Methods, one row each (e.g. zeroshot mma clip_lora dra)."
    ),
    protocol: str = typer.Option(
        "base2new", help="base2new (Table 1), cross_dataset (Table 2) or domain_gen (Table 3)."
    ),
    model: str = MODEL,
    pretrained: str = PRETRAINED,
    data_root: str = DATA_ROOT,
    datasets: list[str] = typer.Option(None, "--datasets", "--dataset", help="Datasets (base2new; default: all 11)."),
    targets: list[str] = TARGETS,
    seeds: list[int] = SEEDS,
    shots: str = SHOTS,
    output: str = OUTPUT,
    device: str = DEVICE,
    config: Path = CONFIG,
    launcher: str = LAUNCHER,
    jobs: int = JOBS,
    dry_run: bool = DRY_RUN,
    partition: str = PARTITION,
    time: int = TIME,
    gpus: int = GPUS,
    cpus: int = CPUS,
    mem: int = MEM,
    array_parallelism: int = ARRAY_PARALLELISM,
    sbatch: list[str] = SBATCH,
    reference: str = typer.Option(
        None,
        "--reference",
        help="One of --methods: add each method's paired difference to it (same datasets and seeds) with its "
        "95% bootstrap interval and whether it is resolved.",
    ),
) -> None:
    """The comparison table with a row per method: runs (or reuses) each method's runs with its published
    settings; a method that fails is a row "failed: <reason>" and the others go on. Cells show mean ± std
    [95% bootstrap interval] over seeds."""
    from dra.launch.grid import LaunchOptions, launch_compare
    from dra.protocols import compare as protocol_module

    protocol = protocol.replace("-", "_")
    with _errors():
        options = LaunchOptions(launcher, jobs, dry_run)
        slurm = _slurm(partition, time, gpus, cpus, mem, array_parallelism, sbatch)
        if protocol not in ("base2new", "cross_dataset", "domain_gen"):
            raise ValueError(f"--protocol must be base2new, cross_dataset or domain_gen, got {protocol!r}")
        protocol_module.check_reference(methods, reference)

        def settings_for(method: str):
            return _settings(
                protocol,
                config,
                overrides,
                method=method,
                model=model,
                pretrained=pretrained,
                data_root=data_root,
                datasets=(datasets or None) if protocol == "base2new" else None,
                targets=(targets or None) if protocol != "base2new" else None,
                seeds=seeds or None,
                shots=shots,
                output=output,
                device=device,
                slurm=slurm,
            )

        _launched(
            lambda: protocol_module.run(methods, settings_for, protocol, echo=typer.echo, reference=reference),
            lambda: launch_compare(methods, settings_for, options, typer.echo),
            lambda failures: protocol_module.run(
                methods, settings_for, protocol, echo=typer.echo, gather=failures, reference=reference
            ),
            options,
        )


SUBSAMPLE = typer.Option("all", help="Label space: all classes, or the base / new half.")


@app.command()
def train(
    overrides: list[str] = OVERRIDES,
    dataset: str = typer.Option(..., help="Dataset to train on: a name, or a folder of class sub-folders."),
    subsample: str = SUBSAMPLE,
    method: str = METHOD,
    model: str = MODEL,
    pretrained: str = PRETRAINED,
    data_root: str = DATA_ROOT,
    seed: int = typer.Option(1, help="Seed of the few-shot draw and the run."),
    shots: str = SHOTS,
    output: str = OUTPUT,
    device: str = DEVICE,
    config: Path = CONFIG,
    split: str = SPLIT,
) -> None:
    """Train adapters on one dataset; saves an adapter checkpoint each epoch (a killed run resumes)."""
    import json

    from dra.protocols import single

    with _errors():
        cfg = _settings(
            "base2new",
            config,
            overrides,
            method=method,
            model=model,
            pretrained=pretrained,
            data_root=data_root,
            shots=shots,
            output=output,
            device=device,
            split=split,
        )
        result = single.train(cfg, dataset, subsample, seed)
    typer.echo(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2))


@app.command("eval")
def evaluate(
    overrides: list[str] = OVERRIDES,
    dataset: str = typer.Option(..., help="Dataset to test on: a name, or a folder of class sub-folders."),
    checkpoint: str = typer.Option(None, help="Adapter checkpoint (.safetensors) to evaluate."),
    subsample: str = SUBSAMPLE,
    method: str = METHOD,
    model: str = MODEL,
    pretrained: str = PRETRAINED,
    data_root: str = DATA_ROOT,
    seed: int = typer.Option(1, help="Seed (picks the base/new split's draw)."),
    output: str = OUTPUT,
    device: str = DEVICE,
    config: Path = CONFIG,
    split: str = SPLIT,
) -> None:
    """Test accuracy of a checkpoint (or of zero-shot CLIP) on a dataset's test split, as JSON."""
    import json

    from dra.protocols import single

    with _errors():
        cfg = _settings(
            "base2new",
            config,
            overrides,
            method=method,
            model=model,
            pretrained=pretrained,
            data_root=data_root,
            output=output,
            device=device,
            split=split,
        )
        result = single.evaluate(
            cfg,
            dataset,
            subsample,
            seed,
            checkpoint,
            _pretrained(pretrained),
            single.names_a_model(method, model, config, overrides),
        )
    typer.echo(json.dumps(result, indent=2))


@app.command()
def visualize(
    checkpoint: str = typer.Option(..., help="DRA adapter checkpoint (.safetensors)."),
    image: Path = typer.Option(..., help="An image file."),
    classname: str = typer.Option(None, help="Class name for the text prompt (default: the first trained)."),
    block: int = typer.Option(None, help="Adapted block to show (1-based; default: the last)."),
    pretrained: str = PRETRAINED,
    output: str = typer.Option("runs/visualize", help="Folder for the PNGs."),
) -> None:
    """Paper Figure 4: per-token ranks of an image and a prompt, and noisy-vs-noiseless order agreement."""
    import json

    from dra.analysis.token_ranks import token_ranks
    from dra.checkpoints import load_model

    with _errors():
        model = load_model(checkpoint, pretrained=_pretrained(pretrained))
        if model.method != "dra":
            raise ValueError(f"checkpoint {checkpoint} is a '{model.method}' model: only DRA assigns ranks")
        result = token_ranks(model, str(image), classname, output, block)
    typer.echo(json.dumps(result, indent=2))


@app.command()
def predict(
    images: list[str] = typer.Argument(..., help="Image files or folders (read recursively)."),
    checkpoint: str = typer.Option(..., help="Adapter checkpoint (.safetensors) from `dra train`."),
    top_k: int = typer.Option(5, "--top-k", help="Classes shown per image."),
    classnames: Path = typer.Option(
        None,
        "--classnames",
        help="A file of class names, one per line: classify "
        "into these instead of the trained classes (zero-shot new classes).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: predictions, errors, classnames."),
    csv_path: Path = typer.Option(None, "--csv", help="Write image,rank,class,prob rows to this CSV file."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per batch."),
    workers: int = typer.Option(0, "--workers", help="Image loading processes."),
    pretrained: str = PRETRAINED,
    device: str = DEVICE,
) -> None:
    """Classify images with a trained checkpoint: top-k classes with probabilities; unreadable files are reported."""
    import json

    from dra.checkpoints import load_model
    from dra.engine.predict import predict as run
    from dra.io import atomic_write_text
    from dra.labels import read_classnames

    with _errors():
        if top_k < 1:
            raise ValueError(f"--top-k must be >= 1, got {top_k}")
        if csv_path is not None:  # before any work: a CSV that cannot be written fails first
            from dra.io import ensure_writable

            if csv_path.is_dir():
                raise ValueError(f"--csv {csv_path} is a folder; give a file name, e.g. {csv_path / 'predictions.csv'}")
            ensure_writable(csv_path.expanduser().absolute().parent)
        names = read_classnames(classnames) if classnames else None
        model = load_model(checkpoint, pretrained=_pretrained(pretrained))
        out = run(
            model, images, top_k=top_k, classnames=names, batch_size=batch_size, device=device, num_workers=workers
        )
        if csv_path is not None:
            atomic_write_text(csv_path, out.to_csv())
    if as_json:
        typer.echo(json.dumps(out.to_json(), indent=2))
    elif csv_path is None:
        typer.echo(out.to_terminal())
    for e in out.errors:
        typer.echo(f"skipped: {e['image']}: {e['error']}", err=True)
    if csv_path is not None:
        typer.echo(f"{len(out.rows)} images -> {csv_path}", err=True)
    if not out.rows:
        typer.echo("error: no image could be classified", err=True)
        raise typer.Exit(1)


@app.command()
def plot(
    run_dir: Path = typer.Argument(
        ..., help="A run folder (holds metrics.csv), e.g. runs/train/dra-<hash>/eurosat-all/seed1."
    ),
    output: Path = typer.Option(None, "--output", "-o", help="PNG to write (default: RUN_DIR/curves.png)."),
) -> None:
    """Draw a run's training curves (loss parts, learning rate) and its test accuracies as a PNG."""
    from dra.engine.metrics_log import METRICS_FILE, read_metrics
    from dra.report.plots import plot_curves, run_accuracies

    with _errors():
        path = run_dir / METRICS_FILE
        if not path.is_file():
            found = sorted(run_dir.rglob(METRICS_FILE)) if run_dir.is_dir() else []
            hint = f"; runs below it: {', '.join(str(p.parent) for p in found[:3])}" if found else ""
            raise ValueError(f"no {METRICS_FILE} in {run_dir}: give a run folder written by dra train / base2new{hint}")
        rows = read_metrics(path)
        out = plot_curves(
            rows, output or run_dir / "curves.png", title=str(run_dir), accuracies=run_accuracies(run_dir, rows)
        )
    typer.echo(str(out))


@app.command()
def report(
    runs_dir: Path = typer.Argument(
        ..., help="A runs folder: the --output of base2new / compare / ablate (e.g. runs/pocket)."
    ),
    output: Path = typer.Option(None, "--output", "-o", help="HTML file to write (default: RUNS_DIR/report.html)."),
) -> None:
    """One self-contained HTML page of a runs folder: the tables, training curves, efficiency, token-rank maps,
    and the settings and command behind each number; a partial grid shows its missing runs."""
    from dra.report.page import write_report

    with _errors():
        out = write_report(runs_dir, output, echo=lambda text: typer.echo(text, err=True))
    typer.echo(str(out))


def _transfer_command(name: str, doc: str):
    """cross-dataset and domain-gen: one signature, two settings files."""

    def command(
        overrides: list[str] = OVERRIDES,
        method: str = METHOD,
        model: str = MODEL,
        pretrained: str = PRETRAINED,
        data_root: str = DATA_ROOT,
        targets: list[str] = TARGETS,
        seeds: list[int] = SEEDS,
        shots: str = SHOTS,
        output: str = OUTPUT,
        device: str = DEVICE,
        config: Path = CONFIG,
        launcher: str = LAUNCHER,
        jobs: int = JOBS,
        dry_run: bool = DRY_RUN,
        partition: str = PARTITION,
        time: int = TIME,
        gpus: int = GPUS,
        cpus: int = CPUS,
        mem: int = MEM,
        array_parallelism: int = ARRAY_PARALLELISM,
        sbatch: list[str] = SBATCH,
    ) -> None:
        from dra.launch.grid import LaunchOptions, launch_protocol
        from dra.protocols import transfer

        with _errors():
            options = LaunchOptions(launcher, jobs, dry_run)
            cfg = _settings(
                name,
                config,
                overrides,
                method=method,
                model=model,
                pretrained=pretrained,
                data_root=data_root,
                targets=targets or None,
                seeds=seeds or None,
                shots=shots,
                output=output,
                device=device,
                slurm=_slurm(partition, time, gpus, cpus, mem, array_parallelism, sbatch),
            )
            _launched(
                lambda: transfer.run(cfg, echo=typer.echo),
                lambda: launch_protocol(cfg, options, typer.echo),
                lambda failures: transfer.run(cfg, echo=typer.echo, gather=failures),
                options,
            )

    command.__doc__ = doc
    command.__name__ = name
    return command


app.command("cross-dataset")(
    _transfer_command(
        "cross_dataset", "Cross-dataset transfer (paper Table 2): train on ImageNet, test on 10 other datasets."
    )
)
app.command("domain-gen")(
    _transfer_command(
        "domain_gen", "Domain generalisation (paper Table 3): train on ImageNet, test on -V2, -Sketch, -A, -R."
    )
)


@app.command()
def demo(
    overrides: list[str] = OVERRIDES,
    model: str = MODEL,
    pretrained: str = PRETRAINED,
    output: str = OUTPUT,
    device: str = DEVICE,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (averages)."),
) -> None:
    """A short base-to-new run that works offline: real CLIP on `shapes` when its weights are here,
    otherwise the pocket world (a simulation: generated datasets, a tiny CLIP dra pretrained itself)."""
    from dra.pocket import demo as pocket

    with _errors():
        cfg = _settings("demo", None, overrides, model=model, pretrained=pretrained, output=output, device=device)
        pocket.demo(cfg, overrides, as_json, echo=typer.echo, note=lambda text: typer.echo(text, err=True))


@app.command()
def ablate(
    overrides: list[str] = OVERRIDES,
    suites: list[str] = typer.Option(
        ["table4"],
        "--suites",
        "--suite",
        help="table4 (branches, CR, reg, baseline), table5 (K, ratios), rank, start "
        "(Fig. 3), design (docs/design.md's choices).",
    ),
    protocol: str = typer.Option("base2new", help="base2new, cross_dataset or domain_gen."),
    config: Path = CONFIG,
    model: str = MODEL,
    pretrained: str = PRETRAINED,
    data_root: str = DATA_ROOT,
    datasets: list[str] = typer.Option(None, "--datasets", "--dataset", help="Datasets (base2new)."),
    targets: list[str] = TARGETS,
    seeds: list[int] = SEEDS,
    shots: str = SHOTS,
    output: str = OUTPUT,
    device: str = DEVICE,
    launcher: str = LAUNCHER,
    jobs: int = JOBS,
    dry_run: bool = DRY_RUN,
    partition: str = PARTITION,
    time: int = TIME,
    gpus: int = GPUS,
    cpus: int = CPUS,
    mem: int = MEM,
    array_parallelism: int = ARRAY_PARALLELISM,
    sbatch: list[str] = SBATCH,
) -> None:
    """The paper's ablations (Tables 4, 5, Fig. 3) and the design choices of docs/design.md: a row per setting, mean ± std over seeds."""
    from dra.launch.grid import LaunchOptions, launch_ablate
    from dra.protocols import ablate as protocol_ablate

    with _errors():
        options = LaunchOptions(launcher, jobs, dry_run)
        values = dict(
            model=model,
            pretrained=pretrained,
            data_root=data_root,
            seeds=seeds or None,
            shots=shots,
            output=output,
            device=device,
            slurm=_slurm(partition, time, gpus, cpus, mem, array_parallelism, sbatch),
        )
        if protocol == "base2new":
            values["datasets"] = datasets or None
        else:
            values["targets"] = targets or None
        cfg = _settings(str(config) if config else protocol, None, overrides, **values)
        cfg.protocol = protocol
        _launched(
            lambda: protocol_ablate.run(cfg, list(suites), echo=typer.echo),
            lambda: launch_ablate(cfg, list(suites), options, typer.echo),
            lambda failures: protocol_ablate.run(cfg, list(suites), echo=typer.echo, gather=failures),
            options,
        )


@pocket_app.command("pretrain")
def pocket_pretrain(
    steps: int = typer.Option(800, help="Optimizer steps."),
    batch_size: int = typer.Option(64, help="Image-caption pairs per step."),
    lr: float = typer.Option(1e-3, help="Peak learning rate (AdamW, warm-up then cosine)."),
    seed: int = typer.Option(0, help="Seed of the initialisation and of the generated world."),
    output: str = typer.Option("runs/pocket-pretrain", help="Run folder (checkpoints; a rerun resumes)."),
    threads: int = typer.Option(1, help="torch CPU threads (1 is fastest on a shared machine)."),
    workers: int = typer.Option(1, help="DataLoader workers drawing the world."),
    ship: bool = typer.Option(False, "--ship", help="Copy the final weights into the package (--pretrained pocket)."),
) -> None:
    """Pretrain the pocket world's tiny CLIP contrastively (open_clip's ClipLoss); resumable."""
    from dra.pocket.pretrain import PretrainSettings, pretrain

    with _errors():
        settings = PretrainSettings(
            steps=steps, batch_size=batch_size, lr=lr, seed=seed, threads=threads, workers=workers
        )
        command = f"dra pocket pretrain --steps {steps} --batch-size {batch_size} --lr {lr} --seed {seed}"
        pretrain(settings, output, ship=ship, command=command, echo=typer.echo)


@pocket_app.command("probe")
def pocket_probe(
    weights: Path = typer.Option(None, help="A ViT-Pocket weights file (default: the packaged pocket CLIP)."),
    seed: int = typer.Option(1000, help="World seed of the probe's (unshifted) scenes."),
    train_scenes: int = typer.Option(600, help="Scenes the linear probes are fit on."),
    test_scenes: int = typer.Option(400, help="Scenes every column is scored on (the next indices)."),
    threads: int = typer.Option(1, help="torch CPU threads."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (settings, one object per attribute)."),
) -> None:
    """Per attribute of the pocket world: zero-shot accuracy, linear probes of the frozen and of the
    random-init image tower, and chance (a simulation)."""
    import json

    import torch

    from dra.pocket.probe import ProbeSettings, probe, table_of

    with _errors():
        settings = ProbeSettings(seed=seed, train_scenes=train_scenes, test_scenes=test_scenes)
        torch.set_num_threads(max(1, threads))
        result = probe(weights, settings)
    typer.echo(json.dumps(result, indent=2) if as_json else table_of(result).to_terminal())


def main(argv: list[str] | None = None) -> None:  # console-script entry point
    """Run the CLI. A command-line mistake (a value of the wrong type, an unknown option, a missing
    argument) is one `error:` line naming the option and exit code 1, like every other user error."""
    from dra import command

    # Typer may vendor Click: its UsageError is found from the public BadParameter.
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    raw = list(sys.argv[1:] if argv is None else argv)
    command.record(raw)
    try:
        code = app(args=expand_variadic(raw), prog_name="dra", standalone_mode=False)
    except usage_error as e:
        if type(e).__name__ == "NoArgsIsHelpError" and e.ctx is not None:  # `dra` alone: the help
            typer.echo(e.ctx.get_help())
            sys.exit(0)
        where = f"`{e.ctx.command_path} --help`" if e.ctx else "`dra --help`"
        typer.echo(f"error: {one_line(e.format_message())} (see {where})", err=True)
        code = 1
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
