"""`dra data ...`: list datasets, check a layout on disk, print a few-shot draw, write `shapes`.

A `DataError` (or an unreadable folder: `OSError`) ends a command with its one-line message on stderr and
exit code 1 (`dra.cli.app.errors`, the one handler)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from dra.cli.app import data_app as app
from dra.cli.app import echo as _echo
from dra.cli.app import handles_errors
from dra.data.core import DataError, safe_text

DATASET_HELP = (
    "Dataset name, e.g. eurosat, oxford_pets, imagenet, shapes (see `dra data list`), or a folder "
    "with one sub-folder of images per class."
)
ROOT_HELP = "Folder that holds the datasets in CoOp's layout (not needed for `shapes` or a folder dataset)."
SPLIT_HELP = "A CoOp split file (JSON) for a folder dataset (default: a deterministic 50/20/30 split)."


@app.command("list")
@handles_errors
def list_datasets() -> None:
    """List the datasets the registry knows, with the folder each expects under the data root."""
    from dra.data.registry import DATASETS

    name_width = max(len(name) for name in [*DATASETS, "PATH"])  # e.g. pocket_pattern_shape@dev
    title_width = max(len(spec.title) for spec in DATASETS.values())
    for spec in DATASETS.values():
        where = "generated (no data root needed)" if spec.embedded else f"<data-root>/{spec.folder}/"
        typer.echo(f"{spec.name:{name_width}s} {spec.title:{title_width}s} {where}")
    typer.echo(
        f"{'PATH':{name_width}s} {'(your images)':{title_width}s} any folder with one sub-folder of images per class"
    )


@app.command()
@handles_errors
def check(
    path: Optional[str] = typer.Argument(None, help="A folder of class sub-folders (instead of --dataset)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help=DATASET_HELP),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help=ROOT_HELP),
    split: Optional[Path] = typer.Option(None, "--split", help=SPLIT_HELP),
    shots: Optional[int] = typer.Option(None, "--shots", help="List the classes with fewer training images."),
    decode: Optional[bool] = typer.Option(
        None, "--decode/--no-decode", help="Also open every image (default: on for folders, off otherwise)."
    ),
    workers: int = typer.Option(4, "--workers", help="Threads used to decode images."),
    max_listed: int = typer.Option(20, "--max-listed", help="Missing or bad files printed at most."),
) -> None:
    """Verify a dataset's layout: counts per split and class, every listed file present (and readable)."""
    from dra.data.check import SPLITS, check_dataset
    from dra.data.registry import get_spec

    if (path is None) == (dataset is None):
        raise DataError(
            "give a dataset: `dra data check PATH` or `dra data check --dataset NAME`; see docs/datasets.md"
        )
    dataset = dataset or path
    if decode is None:
        decode = get_spec(dataset, split).user_folder

    bar = None

    def progress(n: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="decoding", unit="img", file=sys.stderr, disable=None)
        bar.update(n)

    try:
        report = check_dataset(
            dataset, data_root, decode=decode, workers=workers, progress=progress, split=split, shots=shots
        )
    finally:
        if bar is not None:
            bar.close()
    spec, splits = report.spec, report.splits
    echo = _echo
    echo(
        f"dataset     {spec.name} ({spec.title})"
        if not spec.user_folder
        else f"dataset     {spec.name} (image folder {spec.folder}"
        + (f", split {spec.split_file})" if spec.split_file else ", CoOp's 50/20/30 split)")
    )
    echo(f"image dir   {splits.image_dir}")
    echo(f"classes     {len(splits.classnames)}")
    expected = spec.expected_counts or (None, None, None)
    for k, exp in zip(SPLITS, expected):
        note = ""
        if exp is not None:
            note = "  (CoOp: same)" if exp == report.counts[k] else f"  (CoOp: {exp})"
        if k == "val" and splits.val_is_test:
            note += "  val is the test set, as in CoOp"
        echo(f"{k:11s} {report.counts[k]}{note}")
    echo("")
    width = max([5] + [len(c) for c in splits.classnames])
    echo(f"{'label':>5s}  {'class':{width}s}  {'train':>7s} {'val':>7s} {'test':>7s}")
    for label, (name, c) in enumerate(zip(splits.classnames, report.per_class)):
        echo(f"{label:5d}  {name:{width}s}  {c['train']:7d} {c['val']:7d} {c['test']:7d}")
    echo("")
    echo(
        f"files       {report.files} listed, {report.files - len(report.missing)} present, {len(report.missing)} missing"
    )
    for p in report.missing[:max_listed]:
        echo(f"  missing   {p}")
    if len(report.missing) > max_listed:
        echo(f"  ... and {len(report.missing) - max_listed} more missing")
    if report.decoded is not None:
        echo(f"decoded     {report.decoded} opened, {report.decoded - len(report.bad)} ok, {len(report.bad)} bad")
        for p, _err in report.bad[:max_listed]:
            echo(f"  bad       {p}")
        if len(report.bad) > max_listed:
            echo(f"  ... and {len(report.bad) - max_listed} more bad")
    if report.short:
        echo(f"short       {len(report.short)} classes have fewer than {report.shots} training images:")
        for name, n in report.short[:max_listed]:
            echo(f"  short     {name}: {n}")
    for w in report.warnings:
        echo(f"warning     {w}")
    if not report.ok:
        _echo(
            f"error: {spec.name}: {len(report.missing)} missing and {len(report.bad)} unreadable files "
            f"under {splits.image_dir}; see docs/datasets.md",
            err=True,
        )
        raise typer.Exit(1)
    echo("OK")


@app.command()
@handles_errors
def fewshot(
    dataset: str = typer.Option(..., "--dataset", "-d", help=DATASET_HELP),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help=ROOT_HELP),
    shots: int = typer.Option(16, "--shots", help="Images per class in train (val gets min(shots, 4)), >= 1."),
    seed: int = typer.Option(1, "--seed", help="Seed of the draw (CoOp/Dassl cfg.SEED)."),
    subsample: str = typer.Option("all", "--subsample", help="all | base | new (base-to-new classes)."),
    split: Optional[Path] = typer.Option(None, "--split", help=SPLIT_HELP),
    indent: Optional[int] = typer.Option(None, "--indent", help="Indent the JSON (default: one line)."),
) -> None:
    """Print the few-shot draw as JSON: {"train": [[relpath, label, classname], ...], "val", "test", "classnames"}."""
    from dra.data.fewshot import SUBSAMPLES, subsample_classes
    from dra.data.fewshot import fewshot as draw
    from dra.data.registry import build_dataset

    if subsample not in SUBSAMPLES:  # before reading a large dataset
        raise DataError(f"--subsample must be one of {', '.join(SUBSAMPLES)}, not {subsample!r}; see docs/datasets.md")
    if shots < 1:
        raise DataError(
            f"--shots must be >= 1, got {shots} (0 no longer means all images: for every image give a --shots "
            f"at least the size of the largest class); see docs/datasets.md"
        )
    splits = subsample_classes(draw(build_dataset(dataset, data_root, split), shots, seed), subsample)
    # names with undecodable bytes are written escaped (`\\xff`), so the JSON is valid UTF-8
    out = {
        k: [[safe_text(splits.relpath(d)), d.label, safe_text(d.classname)] for d in getattr(splits, k)]
        for k in ("train", "val", "test")
    }
    out["classnames"] = [safe_text(c) for c in splits.classnames]
    typer.echo(json.dumps(out, indent=indent, ensure_ascii=False))


@app.command("make-shapes")
@handles_errors
def make_shapes_cmd(
    out: Path = typer.Option(..., "--out", help="Data root to write shapes/ into (CoOp layout)."),
) -> None:
    """Write the embedded `shapes` dataset (deterministic) under a data root of your choice."""
    from dra.data.generated.shapes import make_shapes

    root = make_shapes(out)
    typer.echo(f"wrote {root / 'shapes'}")
