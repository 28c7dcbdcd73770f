"""The `dra` command line (Typer). Each sub-command lives next to the code it drives."""
from __future__ import annotations

import typer

from dra.data.cli import app as data_app

app = typer.Typer(
    name="dra",
    help="Dynamic Rank Adaptation for CLIP: train, evaluate and benchmark adapters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data", help="Check dataset layouts and print few-shot draws.")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


@app.command()
def info(
    model: str = typer.Option("ViT-B-16", help="open_clip model name (ViT-B-16, ViT-B-32, ViT-L-14, ...)."),
    method: str = typer.Option("dra", help="dra, adapter or zeroshot."),
    start_layer: int = typer.Option(None, "--start-layer", help="h: first adapted block (1-based)."),
    rank: int = typer.Option(None, help="r: adapter rank."),
    branches: str = typer.Option(None, help="image, text or both."),
) -> None:
    """Print the trainable parameter counts as JSON (random weights: nothing is downloaded)."""
    import json

    from dra.backbones import BackboneError, load_backbone
    from dra.config import DRAConfig
    from dra.methods import build_method

    overrides = {k: v for k, v in {"start_layer": start_layer, "rank": rank, "branches": branches}.items()
                 if v is not None}
    try:
        config = DRAConfig(**overrides)
        net = build_method(method, load_backbone(model, pretrained=None), ["class"], config)
    except (BackboneError, ValueError) as e:
        _fail(str(e))
    out = {**net.parameter_counts(), "method": method, "model": model}
    if method != "zeroshot":
        out["adapted_blocks"] = {t: sorted(int(k) for k in b) for t, b in net.adapters.items()}
        out["config"] = config.to_dict()
    typer.echo(json.dumps(out, indent=2))


@app.command()
def efficiency(
    model: str = typer.Option("ViT-B-16", help="open_clip model name."),
    methods: list[str] = typer.Option(["dra", "adapter", "zeroshot"], "--methods", help="Rows to measure."),
    batch_size: int = typer.Option(16, help="Images per step."),
    steps: int = typer.Option(5, help="Measured steps per method (after warm-up)."),
    warmup: int = typer.Option(2, help="Unmeasured warm-up steps per method."),
    device: str = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: cuda when available)."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as a JSON list."),
) -> None:
    """Paper Table 6 on this device: trainable params, train/inference images/s, peak memory."""
    import json

    from dra.engine.efficiency import measure_methods
    from dra.report import efficiency_table

    try:
        rows = measure_methods(methods, model=model, batch_size=batch_size, steps=steps, warmup=warmup,
                               device=device)
    except ValueError as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(efficiency_table(rows).to_terminal())


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
