"""Training curves of a run: `metrics.csv` (always) and TensorBoard events (when `tensorboard` is installed).

`metrics.csv` has one row per log step (`kind=step`), one per epoch (`kind=epoch`, means over the
epoch) and one per evaluation a protocol ran (`kind=eval`, `name` = what was tested):

    kind,epoch,step,global_step,loss,ce,reg_image,reg_text,lr,img_s,seconds,name,accuracy

Rows are appended and flushed as they come. A resumed run first drops the rows of the epoch that was
interrupted (those after the last saved epoch), then continues: the file never holds a row twice.
TensorBoard events go to `<run>/tensorboard/` (scalars `train/<part>`, `epoch/<part>`, `eval/<name>`);
a resumed run purges the events past the last saved epoch (SummaryWriter's `purge_step`).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

from dra.io import atomic_write_text
from dra.run_files import METRICS_FILE, TB_DIR

log = logging.getLogger("dra.train")

LEAD = ["kind", "epoch", "step", "global_step", "loss"]
TAIL = ["lr", "img_s", "seconds", "name", "accuracy"]
KNOWN_PARTS = ["ce", "reg_image", "reg_text"]


def tensorboard_available() -> bool:
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or tensorboard present but broken
        return False
    return True


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else ""
    return "" if value is None else value


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a metrics.csv, numbers as floats (ints for epoch/step/global_step), empty cells dropped."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for raw in csv.DictReader(f):
            row: dict[str, Any] = {}
            for k, v in raw.items():
                if v in ("", None) or k is None:
                    continue
                if k in ("kind", "name"):
                    row[k] = v
                elif k in ("epoch", "step", "global_step"):
                    row[k] = int(float(v))
                else:
                    try:
                        row[k] = float(v)
                    except ValueError:
                        row[k] = v
            rows.append(row)
    return rows


class MetricsLog:
    """Appends rows to `<run>/metrics.csv` and mirrors them to TensorBoard when it is installed."""

    def __init__(self, run_dir: str | os.PathLike, tensorboard: bool | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / METRICS_FILE
        self.columns: list[str] | None = None
        self.use_tb = tensorboard_available() if tensorboard is None else tensorboard
        self._file = None
        self._writer = None
        self.tb = None

    def start(self, resume_epoch: int = 0, resume_step: int = 0) -> None:
        """Before the first row: keep the rows of the saved epochs (<= `resume_epoch`), open TensorBoard."""
        if self.path.is_file():
            kept = [r for r in self._raw_rows() if _int(r.get("epoch")) <= resume_epoch]
            if resume_epoch == 0:
                kept = []
            header = self._header()
            if header:
                self.columns = header
                self._rewrite(header, kept)
        if self.use_tb:
            from torch.utils.tensorboard import SummaryWriter

            tb_dir = self.run_dir / TB_DIR
            if resume_epoch == 0 and tb_dir.exists():
                shutil.rmtree(tb_dir, ignore_errors=True)  # a run started over: no stale curves
            self.tb = SummaryWriter(str(tb_dir), purge_step=resume_step + 1 if resume_epoch else None)

    # -- the CSV ------------------------------------------------------------------------------------
    def _header(self) -> list[str] | None:
        with open(self.path, newline="", encoding="utf-8") as f:
            return next(csv.reader(f), None)

    def _raw_rows(self) -> list[dict[str, str]]:
        with open(self.path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, header: list[str], rows: list[dict[str, str]]) -> None:
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=header, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(self.path, buf.getvalue())

    def _write(self, row: dict[str, Any]) -> None:
        try:
            self._append(row)
        except OSError as e:  # a full disk: name the file (a bare "[Errno 28]" names none)
            from dra.io import OutputError

            raise OutputError(f"cannot write {self.path} ({type(e).__name__}: {e.strerror or e})") from None

    def _append(self, row: dict[str, Any]) -> None:
        if self.columns is None:
            parts = [k for k in row if k not in LEAD and k not in TAIL]
            extra = sorted(p for p in parts if p not in KNOWN_PARTS)
            self.columns = LEAD + KNOWN_PARTS + extra + TAIL
        if self._file is None:
            new = not self.path.is_file() or self.path.stat().st_size == 0
            self._file = open(self.path, "a", newline="", encoding="utf-8")
            self._writer = csv.DictWriter(
                self._file, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n"
            )
            if new:
                self._writer.writeheader()
        self._writer.writerow({k: _fmt(v) for k, v in row.items()})
        self._file.flush()

    # -- rows ---------------------------------------------------------------------------------------
    def step(
        self, epoch: int, step: int, global_step: int, parts: dict[str, float], lr: float, img_s: float, seconds: float
    ) -> None:
        self._write(
            {
                "kind": "step",
                "epoch": epoch,
                "step": step,
                "global_step": global_step,
                **parts,
                "lr": lr,
                "img_s": img_s,
                "seconds": seconds,
            }
        )
        if self.tb is not None:
            for k, v in {**parts, "lr": lr, "img_s": img_s}.items():
                self.tb.add_scalar(f"train/{k}", v, global_step)

    def epoch(self, epoch: int, global_step: int, record: dict[str, float]) -> None:
        parts = {k: v for k, v in record.items() if k not in ("epoch", "images")}
        img_s = record.get("images", 0) / max(record.get("seconds", 0.0), 1e-9)
        self._write({"kind": "epoch", "epoch": epoch, "global_step": global_step, **parts, "img_s": img_s})
        if self.tb is not None:
            for k, v in {**parts, "img_s": img_s}.items():
                self.tb.add_scalar(f"epoch/{k}", v, epoch)
            self.tb.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def _int(value) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def log_evaluation(run_dir: str | os.PathLike, epoch: int, accuracies: dict[str, float]) -> None:
    """Append `kind=eval` rows (one per tested label space) to a run's metrics.csv and TensorBoard."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), None)
    if not header:
        return
    with open(path, "a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore", lineterminator="\n")
        for name, acc in accuracies.items():
            w.writerow({"kind": "eval", "epoch": epoch, "name": name, "accuracy": _fmt(float(acc))})
    if tensorboard_available() and (Path(run_dir) / TB_DIR).is_dir():
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(Path(run_dir) / TB_DIR)) as tb:
            for name, acc in accuracies.items():
                tb.add_scalar(f"eval/{name}", float(acc), epoch)
