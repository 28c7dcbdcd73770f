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

app = typer.Typer(
    name="dra",
    help="Dynamic Rank Adaptation for CLIP: train, evaluate and benchmark adapters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data", help="Check dataset layouts and print few-shot draws.")


@contextlib.contextmanager
def _errors():
    """The one error handler of every command: a user-facing error ends as one `error:` line on stderr
    and exit code 1 (settings, data, weights, checkpoints, run folders, a diverged run, an unwritable
    output). Anything else is a bug and keeps its traceback."""
    from dra.backbones import BackboneError
    from dra.data import DataError
    from dra.engine.checkpoint import CheckpointError
    from dra.engine.trainer import RunBusyError, RunMismatchError, TrainingDivergedError
    from dra.errors import one_line

    try:
        yield
    except (DataError, BackboneError, CheckpointError, RunMismatchError, RunBusyError, TrainingDivergedError,
            ValueError, OSError) as e:
        typer.echo(f"error: {one_line(e)}", err=True)
        raise typer.Exit(code=1) from None


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

    from dra.backbones import load_backbone
    from dra.config import DRAConfig
    from dra.methods import build_method

    overrides = {k: v for k, v in {"start_layer": start_layer, "rank": rank, "branches": branches}.items()
                 if v is not None}
    with _errors():
        config = DRAConfig(**overrides)
        net = build_method(method, load_backbone(model, pretrained=None), ["class"], config)
    out = {**net.parameter_counts(), "method": method, "model": model}
    if method != "zeroshot":
        out["adapted_blocks"] = {t: sorted(int(k) for k in b) for t, b in net.adapters.items()}
        out["config"] = config.to_dict()
    typer.echo(json.dumps(out, indent=2))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False)
def efficiency(ctx: typer.Context) -> None:
    """Paper Table 6 on this device: trainable params, train/inference images/s, peak memory (--help: options).

    The same options and defaults as benchmarks/efficiency.py (both are `dra.benchmark.cli.main`).
    """
    from dra.benchmark.cli import main

    code = main(list(ctx.args), prog="dra efficiency")
    if code:
        raise typer.Exit(code=code)


# -- protocol commands --------------------------------------------------------------------------
VARIADIC = ("--seeds", "--datasets", "--dataset", "--methods", "--targets")

OVERRIDES = typer.Argument(None, help="Setting overrides as key=value, e.g. train.epochs=1 dra.rank=16.")
METHOD = typer.Option(None, help="dra, adapter or zeroshot (default: the settings file's).")
MODEL = typer.Option(None, help="open_clip model name, e.g. ViT-B-16.")
PRETRAINED = typer.Option(None, help="'openai' (or another open_clip tag), a checkpoint file, or 'none'.")
DATA_ROOT = typer.Option(None, "--data-root", help="Folder holding the datasets in CoOp's layout.")
SEEDS = typer.Option(None, "--seeds", "--seed", help="Seeds (default: the settings file's).")
SHOTS = typer.Option(None, help="Images per class in the few-shot training set (an integer >= 1), or 'all'.")
OUTPUT = typer.Option(None, help="Output folder (default: runs).")
DEVICE = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: cuda when available).")
CONFIG = typer.Option(None, "--config", help="A settings YAML to start from instead of the packaged one.")


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


def _settings(name: str, config: Path | None, overrides: list[str] | None, pretrained: str | None = None, **values):
    from dra.settings import load_settings

    cfg = load_settings(str(config) if config else name, values, overrides)
    if pretrained is not None:
        cfg.pretrained = pretrained or None  # "" (--pretrained none) = random weights
    return cfg


@app.command()
def base2new(
    overrides: list[str] = OVERRIDES, method: str = METHOD, model: str = MODEL, pretrained: str = PRETRAINED,
    data_root: str = DATA_ROOT, datasets: list[str] = typer.Option(None, "--datasets", "--dataset",
                                                                   help="Datasets (default: all 11)."),
    seeds: list[int] = SEEDS, shots: str = SHOTS, output: str = OUTPUT, device: str = DEVICE, config: Path = CONFIG,
) -> None:
    """Base-to-new generalisation (paper Table 1): train on base classes, test base and new, print the table."""
    from dra.protocols import base2new as protocol

    with _errors():
        cfg = _settings("base2new", config, overrides, method=method, model=model, pretrained=_pretrained(pretrained),
                        data_root=data_root, datasets=datasets or None, seeds=seeds or None, shots=shots,
                        output=output, device=device)
        protocol.run(cfg, echo=typer.echo)


SUBSAMPLE = typer.Option("all", help="Label space: all classes, or the base / new half.")


@app.command()
def train(
    overrides: list[str] = OVERRIDES, dataset: str = typer.Option(..., help="Dataset to train on."),
    subsample: str = SUBSAMPLE, method: str = METHOD, model: str = MODEL, pretrained: str = PRETRAINED,
    data_root: str = DATA_ROOT, seed: int = typer.Option(1, help="Seed of the few-shot draw and the run."),
    shots: str = SHOTS, output: str = OUTPUT, device: str = DEVICE, config: Path = CONFIG,
) -> None:
    """Train adapters on one dataset; saves an adapter checkpoint each epoch (a killed run resumes)."""
    import json

    from dra.protocols import single

    with _errors():
        cfg = _settings("base2new", config, overrides, method=method, model=model,
                        pretrained=_pretrained(pretrained), data_root=data_root, shots=shots, output=output,
                        device=device)
        result = single.train(cfg, dataset, subsample, seed)
    typer.echo(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2))


@app.command("eval")
def evaluate(
    overrides: list[str] = OVERRIDES, dataset: str = typer.Option(..., help="Dataset to test on."),
    checkpoint: str = typer.Option(None, help="Adapter checkpoint (.safetensors) to evaluate."),
    subsample: str = SUBSAMPLE, method: str = METHOD, model: str = MODEL, pretrained: str = PRETRAINED,
    data_root: str = DATA_ROOT, seed: int = typer.Option(1, help="Seed (picks the base/new split's draw)."),
    output: str = OUTPUT, device: str = DEVICE, config: Path = CONFIG,
) -> None:
    """Test accuracy of a checkpoint (or of zero-shot CLIP) on a dataset's test split, as JSON."""
    import json

    from dra.protocols import single

    with _errors():
        cfg = _settings("base2new", config, overrides, method=method, model=model,
                        pretrained=_pretrained(pretrained), data_root=data_root, output=output, device=device)
        result = single.evaluate(cfg, dataset, subsample, seed, checkpoint, _pretrained(pretrained),
                                 single.names_a_model(method, model, config, overrides))
    typer.echo(json.dumps(result, indent=2))


@app.command()
def visualize(
    checkpoint: str = typer.Option(..., help="DRA adapter checkpoint (.safetensors)."),
    image: Path = typer.Option(..., help="An image file."),
    classname: str = typer.Option(None, help="Class name for the text prompt (default: the first trained)."),
    block: int = typer.Option(None, help="Adapted block to show (1-based; default: the last)."),
    pretrained: str = PRETRAINED, output: str = typer.Option("runs/visualize", help="Folder for the PNGs."),
) -> None:
    """Paper Figure 4: per-token ranks of an image and a prompt, and noisy-vs-noiseless order agreement."""
    import json

    from dra.analysis.token_ranks import token_ranks
    from dra.engine.checkpoint import load_model

    with _errors():
        model = load_model(checkpoint, pretrained=_pretrained(pretrained))
        if model.method != "dra":
            raise ValueError(f"checkpoint {checkpoint} is a '{model.method}' model: only DRA assigns ranks")
        result = token_ranks(model, str(image), classname, output, block)
    typer.echo(json.dumps(result, indent=2))


TARGETS = typer.Option(None, "--targets", help="Target datasets (default: the paper's).")


def _transfer_command(name: str, doc: str):
    """cross-dataset and domain-gen: one signature, two settings files."""

    def command(
        overrides: list[str] = OVERRIDES, method: str = METHOD, model: str = MODEL, pretrained: str = PRETRAINED,
        data_root: str = DATA_ROOT, targets: list[str] = TARGETS, seeds: list[int] = SEEDS, shots: str = SHOTS,
        output: str = OUTPUT, device: str = DEVICE, config: Path = CONFIG,
    ) -> None:
        from dra.protocols import transfer

        with _errors():
            cfg = _settings(name, config, overrides, method=method, model=model, pretrained=_pretrained(pretrained),
                            data_root=data_root, targets=targets or None, seeds=seeds or None, shots=shots,
                            output=output, device=device)
            transfer.run(cfg, echo=typer.echo)

    command.__doc__ = doc
    command.__name__ = name
    return command


app.command("cross-dataset")(_transfer_command(
    "cross_dataset", "Cross-dataset transfer (paper Table 2): train on ImageNet, test on 10 other datasets."))
app.command("domain-gen")(_transfer_command(
    "domain_gen", "Domain generalisation (paper Table 3): train on ImageNet, test on -V2, -Sketch, -A, -R."))


@app.command()
def demo(
    overrides: list[str] = OVERRIDES, model: str = MODEL, pretrained: str = PRETRAINED, output: str = OUTPUT,
    device: str = DEVICE,
) -> None:
    """A short base-to-new run on the embedded shapes dataset: works offline, no data needed."""
    from dra.protocols import base2new as protocol

    with _errors():
        cfg = _settings("demo", None, overrides, model=model, pretrained=_pretrained(pretrained), output=output,
                        device=device)
        protocol.demo(cfg, echo=typer.echo, note=lambda text: typer.echo(text, err=True))


def main(argv: list[str] | None = None) -> None:  # console-script entry point
    app(args=expand_variadic(list(sys.argv[1:] if argv is None else argv)), prog_name="dra")


if __name__ == "__main__":
    main()
