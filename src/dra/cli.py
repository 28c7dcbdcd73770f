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
pocket_app = typer.Typer(no_args_is_help=True, help="The pocket world (a simulation): a tiny CLIP dra pretrains itself.")
app.add_typer(pocket_app, name="pocket")


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


# -- protocol commands --------------------------------------------------------------------------
VARIADIC = ("--seeds", "--datasets", "--dataset", "--methods", "--targets", "--suites", "--suite")

OVERRIDES = typer.Argument(None, help="Setting overrides as key=value, e.g. train.epochs=1 dra.rank=16.")
METHOD = typer.Option(None, help="dra, adapter or zeroshot (default: the settings file's).")
MODEL = typer.Option(None, help="open_clip model name, e.g. ViT-B-16.")
PRETRAINED = typer.Option(None, help="'openai' (or another open_clip tag), a checkpoint file, or 'none'.")
DATA_ROOT = typer.Option(None, "--data-root", help="Folder holding the datasets in CoOp's layout.")
SEEDS = typer.Option(None, "--seeds", "--seed", help="Seeds (default: the settings file's).")
SHOTS = typer.Option(None, help="Images per class in the few-shot training set.")
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


@contextlib.contextmanager
def _clear_errors():
    """Known user errors end as one line on stderr and exit code 1."""
    from dra.backbones import BackboneError
    from dra.data import DataError
    from dra.engine.checkpoint import CheckpointError
    from dra.engine.trainer import RunMismatchError

    try:
        yield
    except (DataError, BackboneError, CheckpointError, RunMismatchError, ValueError, FileNotFoundError) as e:
        _fail(str(e).splitlines()[0] if str(e) else type(e).__name__)


@app.command()
def base2new(
    overrides: list[str] = OVERRIDES, method: str = METHOD, model: str = MODEL, pretrained: str = PRETRAINED,
    data_root: str = DATA_ROOT, datasets: list[str] = typer.Option(None, "--datasets", "--dataset",
                                                                   help="Datasets (default: all 11)."),
    seeds: list[int] = SEEDS, shots: int = SHOTS, output: str = OUTPUT, device: str = DEVICE, config: Path = CONFIG,
) -> None:
    """Base-to-new generalisation (paper Table 1): train on base classes, test base and new, print the table."""
    from dra.protocols import base2new as protocol

    with _clear_errors():
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
    shots: int = SHOTS, output: str = OUTPUT, device: str = DEVICE, config: Path = CONFIG,
) -> None:
    """Train adapters on one dataset; saves an adapter checkpoint each epoch (a killed run resumes)."""
    import json

    from dra.protocols import single

    with _clear_errors():
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

    with _clear_errors():
        if checkpoint is None and (method or "dra") != "zeroshot":
            raise ValueError("give --checkpoint (from `dra train`), or --method zeroshot")
        cfg = _settings("base2new", config, overrides, method=method, model=model,
                        pretrained=_pretrained(pretrained), data_root=data_root, output=output, device=device)
        explicit = bool(method or model or config or any(o.startswith("dra.") for o in overrides or []))
        result = single.evaluate(cfg, dataset, subsample, seed, checkpoint, _pretrained(pretrained), explicit)
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

    from dra.api import load_model
    from dra.protocols.visualize import token_ranks

    with _clear_errors():
        model = load_model(checkpoint, pretrained=_pretrained(pretrained))
        if model.method != "dra":
            raise ValueError(f"checkpoint {checkpoint} is a '{model.method}' model: only DRA assigns ranks")
        result = token_ranks(model, str(image), classname, output, block)
    typer.echo(json.dumps(result, indent=2))


def _transfer(name: str, overrides, method, model, pretrained, data_root, targets, seeds, shots, output, device,
              config) -> None:
    from dra.protocols import transfer

    with _clear_errors():
        cfg = _settings(name, config, overrides, method=method, model=model, pretrained=_pretrained(pretrained),
                        data_root=data_root, targets=targets or None, seeds=seeds or None, shots=shots,
                        output=output, device=device)
        transfer.run(cfg, echo=typer.echo)


TARGETS = typer.Option(None, "--targets", help="Target datasets (default: the paper's).")


@app.command("cross-dataset")
def cross_dataset(
    overrides: list[str] = OVERRIDES, method: str = METHOD, model: str = MODEL, pretrained: str = PRETRAINED,
    data_root: str = DATA_ROOT, targets: list[str] = TARGETS, seeds: list[int] = SEEDS, shots: int = SHOTS,
    output: str = OUTPUT, device: str = DEVICE, config: Path = CONFIG,
) -> None:
    """Cross-dataset transfer (paper Table 2): train on ImageNet, test on 10 other datasets."""
    _transfer("cross_dataset", overrides, method, model, pretrained, data_root, targets, seeds, shots, output,
              device, config)


@app.command("domain-gen")
def domain_gen(
    overrides: list[str] = OVERRIDES, method: str = METHOD, model: str = MODEL, pretrained: str = PRETRAINED,
    data_root: str = DATA_ROOT, targets: list[str] = TARGETS, seeds: list[int] = SEEDS, shots: int = SHOTS,
    output: str = OUTPUT, device: str = DEVICE, config: Path = CONFIG,
) -> None:
    """Domain generalisation (paper Table 3): train on ImageNet, test on -V2, -Sketch, -A, -R."""
    _transfer("domain_gen", overrides, method, model, pretrained, data_root, targets, seeds, shots, output,
              device, config)


@app.command()
def demo(
    overrides: list[str] = OVERRIDES, model: str = MODEL, pretrained: str = PRETRAINED, output: str = OUTPUT,
    device: str = DEVICE, as_json: bool = typer.Option(False, "--json", help="Print one JSON object (averages)."),
) -> None:
    """A short base-to-new run that works offline: real CLIP on `shapes` when its weights are here,
    otherwise the pocket world (a simulation: generated datasets, a tiny CLIP dra pretrained itself)."""
    from dra.backbones import BackboneError, load_backbone
    from dra.pocket import demo as pocket
    from dra.protocols import base2new as protocol

    err = (lambda line: typer.echo(line, err=True)) if as_json else typer.echo
    with _clear_errors():
        cfg = _settings("demo", None, overrides, model=model, pretrained=_pretrained(pretrained), output=output,
                        device=device)
        backbone = None
        if cfg.pretrained != "pocket":
            try:
                backbone = load_backbone(cfg.model, cfg.pretrained)
            except BackboneError as e:
                if cfg.pretrained is None or Path(str(cfg.pretrained)).suffix:
                    raise
                typer.echo(f"NOTE: no '{cfg.pretrained}' weights for {cfg.model} here ({e}).", err=True)
                typer.echo(f"NOTE: running the pocket world instead. {pocket.SIMULATION_LINE}", err=True)
        if backbone is None:
            summary = pocket.run_pocket_demo(overrides, output, device, echo=err)
        else:
            if cfg.pretrained is None:
                typer.echo("NOTE: --pretrained none: a RANDOMLY INITIALISED backbone, chance-level numbers.", err=True)
                cfg.output = str(Path(cfg.output) / "random-weights")
            res = protocol.run(cfg, backbone=backbone, echo=err)
            summary = pocket.summarise({cfg.method: res["records"]}, f"{cfg.model} ({cfg.pretrained})", False)
            if not as_json:  # the protocol printed its table already
                return
        pocket.print_summary(summary, as_json, typer.echo)


@app.command()
def ablate(
    overrides: list[str] = OVERRIDES,
    suites: list[str] = typer.Option(["table4"], "--suites", "--suite",
                                     help="table4 (branches, CR, reg, baseline), table5 (K, ratios), rank, start "
                                          "(Fig. 3), design (DESIGN.md's choices)."),
    protocol: str = typer.Option("base2new", help="base2new, cross_dataset or domain_gen."),
    config: Path = CONFIG, model: str = MODEL, pretrained: str = PRETRAINED, data_root: str = DATA_ROOT,
    datasets: list[str] = typer.Option(None, "--datasets", "--dataset", help="Datasets (base2new)."),
    targets: list[str] = TARGETS, seeds: list[int] = SEEDS, shots: int = SHOTS, output: str = OUTPUT,
    device: str = DEVICE,
) -> None:
    """The paper's ablations (Tables 4, 5, Fig. 3) and DESIGN.md's choices: a row per setting, mean ± std over seeds."""
    from dra.protocols import ablate as protocol_ablate

    with _clear_errors():
        values = dict(model=model, pretrained=_pretrained(pretrained), data_root=data_root, seeds=seeds or None,
                      shots=shots, output=output, device=device)
        if protocol == "base2new":
            values["datasets"] = datasets or None
        else:
            values["targets"] = targets or None
        cfg = _settings(str(config) if config else protocol, None, overrides, **values)
        cfg.protocol = protocol
        protocol_ablate.run(cfg, list(suites), echo=typer.echo)


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

    with _clear_errors():
        settings = PretrainSettings(steps=steps, batch_size=batch_size, lr=lr, seed=seed, threads=threads,
                                    workers=workers)
        command = f"dra pocket pretrain --steps {steps} --batch-size {batch_size} --lr {lr} --seed {seed}"
        pretrain(settings, output, ship=ship, command=command, echo=typer.echo)


def main(argv: list[str] | None = None) -> None:  # console-script entry point
    app(args=expand_variadic(list(sys.argv[1:] if argv is None else argv)), prog_name="dra")


if __name__ == "__main__":
    main()
