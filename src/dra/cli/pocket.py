"""`dra pocket ...`: the pocket world (a simulation), here its pretraining."""

from __future__ import annotations

import typer

from dra.cli.app import errors, pocket_app


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

    with errors():
        settings = PretrainSettings(
            steps=steps, batch_size=batch_size, lr=lr, seed=seed, threads=threads, workers=workers
        )
        command = f"dra pocket pretrain --steps {steps} --batch-size {batch_size} --lr {lr} --seed {seed}"
        pretrain(settings, output, ship=ship, command=command, echo=typer.echo)
