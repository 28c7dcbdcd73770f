"""Every file name of a run folder, in one place: the writers (protocols, the training loop) and the
readers (`dra report`, `dra curves`) take them from here.

A run folder (`<output>/<protocol>/<method>-<hash>/<dataset>/seed<k>`) holds:

    adapters.safetensors + adapters.json   the adapter checkpoint (`ADAPTERS_STEM`; dra.load_model reads it)
    last.safetensors                       the resume state (`RESUME_FILE`; `last.pt` of old versions is refused)
    train.log, metrics.csv, tensorboard/   the training log and curves (`dra plot` draws curves.png)
    .lock                                  held by the process that trains in it
    result<suffix>.json                    a base-to-new evaluation (`result_name`)
    eval_<target><suffix>.json             a transfer target's evaluation (`eval_name`)

where `<suffix>` names the evaluation settings (`eval_suffix`: "" for the full test set,
`-test_per_class8` for 8 images per class, `-val` for the validation split that `dra tune` scores). A table's folder (`<output>/<protocol>/<method>-<hash>`)
holds `<stem>.{md,csv,json,png}` and `settings.yaml`. Foundation layer: imports nothing of dra.
"""

from __future__ import annotations

from pathlib import Path

ADAPTERS_STEM = "adapters"
ADAPTERS_WEIGHTS = f"{ADAPTERS_STEM}.safetensors"
ADAPTERS_META = f"{ADAPTERS_STEM}.json"
RESUME_FILE = "last.safetensors"
LEGACY_RESUME_FILE = "last.pt"
LOCK_FILE = ".lock"
TRAIN_LOG = "train.log"
METRICS_FILE = "metrics.csv"
TB_DIR = "tensorboard"
CURVES_PNG = "curves.png"
SETTINGS_FILE = "settings.yaml"
RESULT_PREFIX = "result"
EVAL_PREFIX = "eval_"
RESULT_GLOB = f"{RESULT_PREFIX}*.json"
TABLE_FORMATS = ("md", "csv", "json")


EVAL_SPLITS = ("test", "val")
"""The split a base-to-new run is scored on (the `eval_split` setting): `test` (reported numbers) or `val`
(tuning, `dra tune`); a val result has its own file (`result-val.json`) and is never read as a test one."""


def eval_suffix(test_per_class: int | None, eval_split: str = "test") -> str:
    """The part of a result file's name that names the evaluation settings ("" = the full test set;
    `-val` for the validation split, then `-test_per_class8` for 8 images per class)."""
    if eval_split not in EVAL_SPLITS:
        raise ValueError(f"eval_split must be one of {EVAL_SPLITS}, got {eval_split!r}")
    split = "" if eval_split == "test" else f"-{eval_split}"
    return split + (f"-test_per_class{int(test_per_class)}" if test_per_class else "")


def result_name(suffix: str = "") -> str:
    """A base-to-new result file: `result<suffix>.json`."""
    return f"{RESULT_PREFIX}{suffix}.json"


def eval_name(dataset: str, suffix: str = "") -> str:
    """A transfer target's result file: `eval_<dataset><suffix>.json`."""
    return f"{EVAL_PREFIX}{dataset}{suffix}.json"


def parse_result_name(name: str) -> tuple[str, str] | None:
    """("result", suffix) for `result<suffix>.json`, ("eval", `<dataset><suffix>`) for an `eval_*.json`,
    None for any other file name."""
    if not name.endswith(".json"):
        return None
    stem = name[: -len(".json")]
    if stem.startswith(RESULT_PREFIX):
        return "result", stem[len(RESULT_PREFIX) :]
    if stem.startswith(EVAL_PREFIX):
        return "eval", stem[len(EVAL_PREFIX) :]
    return None


def adapters_path(run_dir: str | Path) -> Path:
    """The checkpoint's path without suffix (`save_adapters` writes `.safetensors` and `.json` beside it)."""
    return Path(run_dir) / ADAPTERS_STEM


def table_files(out: str | Path, stem: str) -> dict[str, Path]:
    """{format: path} of a table written as `<stem>.md/.csv/.json` in `out`."""
    return {fmt: Path(out) / f"{stem}.{fmt}" for fmt in TABLE_FORMATS}
