"""The commands that show results: `dra plot` (a run's curves), `dra report` (a runs folder as one HTML
page) and `dra visualize` (paper Figure 4: per-token ranks)."""

from __future__ import annotations

from pathlib import Path

import typer

from dra.cli.app import app, errors
from dra.cli.options import DEFINITIONS, pretrained_value
from dra.errors import SettingsError
from dra.run_files import CURVES_PNG, METRICS_FILE


@app.command()
def visualize(
    checkpoint: list[str] = typer.Option(
        ..., help="DRA adapter checkpoint (.safetensors); with --scenes, repeat it for several (e.g. one per seed)."
    ),
    image: Path = typer.Option(None, help="An image file (or --scene)."),
    scene: str = typer.Option(
        None,
        help="SEED:INDEX: the pocket world's scene world.sample(SEED, INDEX) instead of --image; the JSON then "
        "also gives the AUC of the token scores for object vs background patches (the generator's object mask).",
    ),
    scenes: str = typer.Option(
        None,
        help="SEED:FIRST-LAST: no plots; per checkpoint and block, both ground-truth AUCs averaged over the pocket "
        "scenes world.sample(SEED, FIRST..LAST) and the checkpoint's class names, for the trained adapters and for "
        "the same adapters freshly initialised (the reference to read them against), and a summary over the "
        "checkpoints: trained, untrained and their difference with 95 % bootstrap intervals.",
    ),
    classname: str = typer.Option(None, help="Class name for the text prompt (default: the first trained)."),
    block: int = typer.Option(None, help="Adapted block to show (1-based; default: the last)."),
    pretrained: str = DEFINITIONS["pretrained"][1],
    output: str = typer.Option("runs/visualize", help="Folder for the PNGs."),
) -> None:
    """Paper Figure 4: per-token ranks of an image and a prompt, noisy-vs-noiseless order agreement, and the AUC
    of the token scores for class words vs template words (and object vs background patches with --scene)."""
    import json

    from dra.analysis.ground_truth import parse_scene, parse_scenes
    from dra.analysis.token_ranks import ground_truth_over_checkpoints, token_ranks
    from dra.checkpoints import load_model

    with errors():
        if sum(x is not None for x in (image, scene, scenes)) != 1:
            raise SettingsError(
                "give exactly one of --image FILE, --scene SEED:INDEX and --scenes SEED:FIRST-LAST (pocket-world scenes)"
            )
        if scenes is not None:
            result = ground_truth_over_checkpoints(checkpoint, parse_scenes(scenes), pretrained_value(pretrained))
            typer.echo(json.dumps(result, indent=2))
            return
        if len(checkpoint) != 1:
            raise SettingsError("give one --checkpoint with --image or --scene (several only with --scenes)")
        checkpoint = checkpoint[0]
        where = parse_scene(scene) if scene is not None else None
        model = load_model(checkpoint, pretrained=pretrained_value(pretrained))
        if model.method != "dra":
            raise SettingsError(f"checkpoint {checkpoint} is a '{model.method}' model: only DRA assigns ranks")
        result = token_ranks(model, None if image is None else str(image), classname, output, block, scene=where)
    typer.echo(json.dumps(result, indent=2))


@app.command()
def plot(
    run_dir: Path = typer.Argument(
        ..., help=f"A run folder (holds {METRICS_FILE}), e.g. runs/train/dra-<hash>/eurosat-all/seed1."
    ),
    output: Path = typer.Option(None, "--output", "-o", help=f"PNG to write (default: RUN_DIR/{CURVES_PNG})."),
) -> None:
    """Draw a run's training curves (loss parts, learning rate) and its test accuracies as a PNG."""
    from dra.engine.metrics_log import read_metrics
    from dra.report.plots import plot_curves, run_accuracies

    with errors():
        path = run_dir / METRICS_FILE
        if not path.is_file():
            found = sorted(run_dir.rglob(METRICS_FILE)) if run_dir.is_dir() else []
            hint = f"; runs below it: {', '.join(str(p.parent) for p in found[:3])}" if found else ""
            raise SettingsError(
                f"no {METRICS_FILE} in {run_dir}: give a run folder written by dra train / base2new{hint}"
            )
        rows = read_metrics(path)
        out = plot_curves(
            rows, output or run_dir / CURVES_PNG, title=str(run_dir), accuracies=run_accuracies(run_dir, rows)
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

    with errors():
        out = write_report(runs_dir, output, echo=lambda text: typer.echo(text, err=True))
    typer.echo(str(out))
