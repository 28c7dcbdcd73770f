"""`dra pocket ...`: the pocket world (a simulation): pretraining its CLIP and probing what it sees."""

from __future__ import annotations

from pathlib import Path

import typer

from dra.cli.app import errors, pocket_app


@pocket_app.command("pretrain")
def pocket_pretrain(
    steps: int = typer.Option(5000, help="Optimizer steps (the shipped weights' 5000: about 1.5 hours on one thread)."),
    batch_size: int = typer.Option(64, help="Image-caption pairs per step."),
    lr: float = typer.Option(1e-3, help="Peak learning rate (AdamW, warm-up then cosine)."),
    seed: int = typer.Option(0, help="Seed of the initialisation and of the generated world."),
    output: str = typer.Option("runs/pocket-pretrain", help="Run folder (checkpoints; a rerun resumes)."),
    threads: int = typer.Option(1, help="torch CPU threads (1 is fastest on a shared machine)."),
    workers: int = typer.Option(1, help="DataLoader workers drawing the world."),
    ship: bool = typer.Option(False, "--ship", help="Copy the final weights into the package (--pretrained pocket)."),
    recipe: str = typer.Option(
        "attributes",
        help="'attributes' (the shipped weights' recipe: curriculum batches + attribute prompts), or the earlier "
        "'groups' and 'curriculum' (docs/pocket.md).",
    ),
    model: str = typer.Option(
        None,
        help="The tower, one of dra.pocket.MODELS (default: the shipped weights' tower, ViT-Pocket-P6; "
        "ViT-Pocket is the earlier 8-px tower, docs/pocket.md).",
    ),
) -> None:
    """Pretrain the pocket world's tiny CLIP contrastively (open_clip's ClipLoss); resumable."""
    from dra.pocket import MODEL  # here, not at the top: `dra --help` and `dra data` stay free of torch
    from dra.pocket.pretrain import PretrainSettings, pretrain

    model = model or MODEL
    with errors():
        settings = PretrainSettings(
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            threads=threads,
            workers=workers,
            recipe=recipe,
            model=model,
        )
        command = (
            f"dra pocket pretrain --steps {steps} --batch-size {batch_size} --lr {lr} --seed {seed} "
            f"--recipe {recipe} --model {model}"
        )
        meta = pretrain(settings, output, ship=ship, command=command, echo=typer.echo)
        if "stopped_at" not in meta:
            from dra.pocket.probe import record_probe

            typer.echo("probing the weights (dra pocket probe; about 30 s) ...")
            record_probe(Path(output), ship=ship)


@pocket_app.command("probe")
def pocket_probe(
    weights: Path = typer.Option(None, help="A pocket CLIP weights file (default: the packaged pocket CLIP)."),
    seed: int = typer.Option(1000, help="World seed of the probe's (unshifted) scenes."),
    train_scenes: int = typer.Option(600, help="Scenes the linear probes are fit on."),
    test_scenes: int = typer.Option(400, help="Scenes every column is scored on (the next indices)."),
    threads: int = typer.Option(1, help="torch CPU threads."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (settings, one object per attribute)."),
    model: str = typer.Option(
        None, help="The tower of --weights (default: the 'model' in the pocket.json beside it, else the shipped tower)."
    ),
) -> None:
    """Per attribute of the pocket world: zero-shot accuracy, linear probes of the frozen and of the
    random-init image tower, and chance (a simulation)."""
    import json

    import torch

    from dra.pocket.probe import ProbeSettings, probe, table_of

    with errors():
        settings = ProbeSettings(seed=seed, train_scenes=train_scenes, test_scenes=test_scenes)
        torch.set_num_threads(max(1, threads))
        result = probe(weights, settings, model)
    typer.echo(json.dumps(result, indent=2) if as_json else table_of(result).to_terminal())
