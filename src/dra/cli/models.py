"""The commands on one model: `dra train`, `eval`, `predict`, `info` and `import-checkpoint`."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from dra.cli.app import app, errors
from dra.cli.options import DEFINITIONS, RunOptions, pretrained_value, with_options
from dra.errors import SettingsError
from dra.methods.registry import method_names, method_spec

ONE_RUN = ("overrides", "method", "model", "pretrained", "data_root", "output", "device", "config", "split")
"""The shared options of `dra train` and `dra eval` (train adds --shots)."""
SUBSAMPLE = typer.Option("all", help="Label space: all classes, or the base / new half.")


@app.command()
def info(
    model: str = typer.Option("ViT-B-16", help="open_clip model name (ViT-B-16, ViT-B-32, ViT-L-14, ...)."),
    method: str = typer.Option("dra", help=f"Any registered method ({', '.join(method_names())})."),
    start_layer: int = typer.Option(None, "--start-layer", help="h: first adapted block (1-based)."),
    rank: int = typer.Option(None, help="r: adapter / LoRA rank."),
    branches: str = typer.Option(None, help="image, text or both."),
) -> None:
    """Print the trainable parameter counts as JSON (random weights: nothing is downloaded)."""
    import dataclasses
    import json

    from dra.backbones import load_backbone
    from dra.methods import build_method

    with errors():
        config_class = method_spec(method).config  # SettingsError naming the methods when unknown
        given = {
            k: v for k, v in {"start_layer": start_layer, "rank": rank, "branches": branches}.items() if v is not None
        }
        fields = {f.name for f in dataclasses.fields(config_class)} if config_class else set()
        unused = sorted(set(given) - fields)
        if unused:
            raise SettingsError(f"method {method} has no setting {unused[0]}")
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

    with errors():
        ensure_writable(Path(output).expanduser().absolute().parent)  # before any work
        names = read_classnames(classnames) if classnames else None
        weights = pretrained_value(pretrained)
        result = run_import(source, method, model, (weights or None), output, names)
    typer.echo(json.dumps(result, indent=2))


@app.command()
@with_options(*ONE_RUN, "shots")
def train(
    opts: RunOptions,
    dataset: str = typer.Option(..., help="Dataset to train on: a name, or a folder of class sub-folders."),
    subsample: str = SUBSAMPLE,
    seed: int = typer.Option(1, help="Seed of the few-shot draw and the run."),
) -> None:
    """Train adapters on one dataset; saves an adapter checkpoint each epoch (a killed run resumes)."""
    import json

    from dra.protocols import single

    with errors():
        cfg = opts.settings("base2new")
        result = single.train(cfg, dataset, subsample, seed)
    typer.echo(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2))


@app.command("eval")
@with_options(*ONE_RUN)
def evaluate(
    opts: RunOptions,
    dataset: str = typer.Option(..., help="Dataset to test on: a name, or a folder of class sub-folders."),
    checkpoint: str = typer.Option(None, help="Adapter checkpoint (.safetensors) to evaluate."),
    subsample: str = SUBSAMPLE,
    seed: int = typer.Option(1, help="Seed (picks the base/new split's draw)."),
) -> None:
    """Test accuracy of a checkpoint (or of zero-shot CLIP) on a dataset's test split, as JSON."""
    import json

    from dra.protocols import single

    with errors():
        cfg = opts.settings("base2new")
        result = single.evaluate(
            cfg,
            dataset,
            subsample,
            seed,
            checkpoint,
            pretrained_value(opts.pretrained),
            single.names_a_model(opts.method, opts.model, opts.config, opts.overrides),
        )
    typer.echo(json.dumps(result, indent=2))


@app.command()
def predict(
    images: List[str] = typer.Argument(..., help="Image files or folders (read recursively)."),
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
    pretrained: str = DEFINITIONS["pretrained"][1],
    device: str = DEFINITIONS["device"][1],
) -> None:
    """Classify images with a trained checkpoint: top-k classes with probabilities; unreadable files are reported."""
    import json

    from dra.checkpoints import load_model
    from dra.engine.predict import predict as run
    from dra.io import atomic_write_text
    from dra.labels import read_classnames

    with errors():
        if top_k < 1:
            raise SettingsError(f"--top-k must be >= 1, got {top_k}")
        if csv_path is not None:  # before any work: a CSV that cannot be written fails first
            from dra.io import ensure_writable

            if csv_path.is_dir():
                raise SettingsError(
                    f"--csv {csv_path} is a folder; give a file name, e.g. {csv_path / 'predictions.csv'}"
                )
            ensure_writable(csv_path.expanduser().absolute().parent)
        names = read_classnames(classnames) if classnames else None
        model = load_model(checkpoint, pretrained=pretrained_value(pretrained))
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
