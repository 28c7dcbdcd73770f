"""The protocol commands: `dra base2new`, `cross-dataset`, `domain-gen`, `compare`, `ablate`, `tune`, `demo`
and `settings` (the merged settings a run uses)."""

from __future__ import annotations

from typing import List

import typer

from dra.cli.app import app, errors
from dra.cli.options import LAUNCH, SETTINGS, RunOptions, launched, with_options
from dra.errors import SettingsError
from dra.settings import PROTOCOLS, protocols_text


@app.command("settings")
def show_settings(
    overrides: List[str] = typer.Argument(
        None, help="Setting overrides as key=value, e.g. train.epochs=1 dra.rank=16."
    ),
    method: str = typer.Option("dra", help="The method whose recipe to show."),
    protocol: str = typer.Option("base2new", help=f"{protocols_text()}."),
    dataset: str = typer.Option("imagenet", help="The dataset (its per-dataset overrides are merged in)."),
) -> None:
    """Print the fully merged settings a run of METHOD on DATASET under PROTOCOL uses (YAML)."""
    from dra.recipe import run_settings, to_yaml

    with errors():
        typer.echo(to_yaml(run_settings(method, protocol.replace("-", "_"), dataset, overrides)), nl=False)


@app.command()
@with_options(*SETTINGS, "datasets", "split", *LAUNCH)
def base2new(opts: RunOptions) -> None:
    """Base-to-new generalisation (paper Table 1): train on base classes, test base and new, print the table."""
    from dra.launch.grid import launch_protocol
    from dra.protocols import base2new as protocol

    with errors():
        options = opts.launch_options()
        cfg = opts.settings("base2new")
        launched(
            options,
            lambda: protocol.run(cfg, echo=typer.echo),
            lambda: launch_protocol(cfg, options, typer.echo),
            lambda failures: protocol.run(cfg, echo=typer.echo, gather=failures),
        )


@app.command()
@with_options(
    *(n for n in SETTINGS if n != "method"),  # --methods: a row each
    "datasets",
    "targets",
    *LAUNCH,
    datasets=typer.Option(None, "--datasets", "--dataset", help="Datasets (base2new; default: all 11)."),
)
def compare(
    opts: RunOptions,
    methods: List[str] = typer.Option(
        ..., "--methods", help="Methods, one row each (e.g. zeroshot mma clip_lora dra)."
    ),
    protocol: str = typer.Option("base2new", help=f"{protocols_text(tables=True)}."),
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
    from dra.launch.grid import launch_compare
    from dra.protocols import compare as protocol_module

    protocol = protocol.replace("-", "_")
    with errors():
        options = opts.launch_options()
        opts.slurm()  # a bad --sbatch is named before any work
        if protocol not in PROTOCOLS:
            raise SettingsError(f"--protocol must be {protocols_text()}, got {protocol!r}")
        protocol_module.check_reference(methods, reference)

        def settings_for(method: str):
            b2n = protocol == "base2new"
            return opts.settings(
                protocol,
                method=method,
                datasets=(opts.datasets or None) if b2n else None,
                targets=(opts.targets or None) if not b2n else None,
            )

        launched(
            options,
            lambda: protocol_module.run(methods, settings_for, protocol, echo=typer.echo, reference=reference),
            lambda: launch_compare(methods, settings_for, options, typer.echo),
            lambda failures: protocol_module.run(
                methods, settings_for, protocol, echo=typer.echo, gather=failures, reference=reference
            ),
        )


@app.command()
@with_options(
    *(n for n in SETTINGS if n != "method"),  # --methods: a table each
    "datasets",
    *LAUNCH,
    datasets=typer.Option(
        None,
        "--datasets",
        "--dataset",
        help="Pocket datasets, each tuned on its dev draw (pocket_x -> pocket_x@dev; default: the settings file's).",
    ),
)
def tune(
    opts: RunOptions,
    methods: List[str] = typer.Option(
        ..., "--methods", help="Methods to tune, the same number of trials each (e.g. adapter dra coop kgcoop mma)."
    ),
    lr_factors: List[float] = typer.Option(
        None,
        "--lr-factors",
        help="Multipliers of each method's current lr, for every method (default: 0.25 0.5 1 2 4).",
    ),
    epochs: List[int] = typer.Option(
        None,
        "--epochs",
        help="Epoch counts to try, for every method (default: each method's current epochs and half of it).",
    ),
) -> None:
    """Choose each method's lr and epochs on the pocket world's DEV draw (a simulation): the same grid for
    every method, each trial a base-to-new run scored on the dev draw's val split (never a test image);
    the highest mean HM wins. Writes tune.{md,csv,json} and tuned.yaml (method_overrides, ready to paste)."""
    from dra.launch.grid import launch_tune
    from dra.protocols import tune as protocol

    with errors():
        options = opts.launch_options()
        grid = {"datasets": opts.datasets or None, "lr_factors": lr_factors or None, "epochs": epochs or None}

        def settings_for(method: str):
            return opts.settings("pocket", method=method)

        def run(failures=None) -> None:  # the runs the jobs finished are reused; a failed one runs here again
            settings_file = str(opts.config) if opts.config else "pocket"
            protocol.run(methods, settings_for, **grid, settings_file=settings_file, echo=typer.echo)

        launched(
            options,
            run,
            lambda: launch_tune(protocol.plan(methods, settings_for, **grid), options, typer.echo),
            run,
        )


def _transfer_command(name: str, doc: str):
    """cross-dataset and domain-gen: one signature, two settings files."""

    @with_options(*SETTINGS, "targets", *LAUNCH)
    def command(opts: RunOptions) -> None:
        from dra.launch.grid import launch_protocol
        from dra.protocols import transfer

        with errors():
            options = opts.launch_options()
            cfg = opts.settings(name)
            launched(
                options,
                lambda: transfer.run(cfg, echo=typer.echo),
                lambda: launch_protocol(cfg, options, typer.echo),
                lambda failures: transfer.run(cfg, echo=typer.echo, gather=failures),
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
@with_options("overrides", "model", "pretrained", "output", "device")
def demo(
    opts: RunOptions,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (averages)."),
) -> None:
    """A short base-to-new run that works offline: real CLIP on `shapes` when its weights are here,
    otherwise the pocket world (a simulation: generated datasets, a tiny CLIP dra pretrained itself)."""
    from dra.protocols import demo as protocol

    with errors():
        cfg = opts.settings("demo")
        protocol.demo(cfg, opts.overrides, as_json, echo=typer.echo, note=lambda text: typer.echo(text, err=True))


@app.command()
@with_options(
    *(n for n in SETTINGS if n != "method"),  # each setting of a suite names its method
    "datasets",
    "targets",
    *LAUNCH,
    datasets=typer.Option(None, "--datasets", "--dataset", help="Datasets (base2new)."),
)
def ablate(
    opts: RunOptions,
    suites: List[str] = typer.Option(
        ["table4"],
        "--suites",
        "--suite",
        help="table4 (branches, CR, reg, baseline), table5 (K, ratios), rank, start "
        "(Fig. 3), design (docs/design.md's choices), mechanism (token grouping: default, noiseless, random).",
    ),
    protocol: str = typer.Option("base2new", help=f"{protocols_text()}."),
) -> None:
    """The paper's ablations (Tables 4, 5, Fig. 3) and the design choices of docs/design.md: a row per setting, mean ± std over seeds."""
    from dra.launch.grid import launch_ablate
    from dra.protocols import ablate as protocol_ablate

    with errors():
        options = opts.launch_options()
        b2n = protocol == "base2new"
        cfg = opts.settings(
            protocol,
            datasets=(opts.datasets or None) if b2n else None,
            targets=None if b2n else (opts.targets or None),
        )
        cfg.protocol = protocol
        launched(
            options,
            lambda: protocol_ablate.run(cfg, list(suites), echo=typer.echo),
            lambda: launch_ablate(cfg, list(suites), options, typer.echo),
            lambda failures: protocol_ablate.run(cfg, list(suites), echo=typer.echo, gather=failures),
        )
