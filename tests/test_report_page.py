"""`dra report`: a small real grid of the pocket world rendered as one self-contained page, opened in
headless Chromium (the Debian package; .ci/run installs it): a screenshot, no console error, and the
table's values equal the runs' JSON results (a partial grid: the missing run is shown as such)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dra.report import display_name
from safety_helpers import invoke, one_error_line

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium; CI installs it)"
)
QUICK = [
    "train.epochs=1",
    "train.warmup_epochs=0",
    "train.batch_size=4",
    "eval.batch_size=50",
    "test_per_class=3",
]


class Cells(HTMLParser):
    """{table id: {row label: {column: float}}} from the cells' data-value attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, dict[str, dict[str, float]]] = {}
        self.texts: dict[str, dict[str, dict[str, str]]] = {}
        self._table = self._row = self._col = None
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "src" in a:
            self.sources.append(a["src"])
        if tag == "link" and "href" in a:
            self.sources.append(a["href"])
        if tag == "table" and "data-table" in a:
            self._table = a["data-table"]
            self.tables.setdefault(self._table, {})
            self.texts.setdefault(self._table, {})
        elif tag == "tr" and "data-row" in a and self._table:
            self._row = a["data-row"]
        elif tag == "td" and self._table and self._row and "data-column" in a:
            self._col = a["data-column"]
            if "data-value" in a:
                self.tables[self._table].setdefault(self._row, {})[self._col] = float(a["data-value"])
            self.texts[self._table].setdefault(self._row, {})[self._col] = ""

    def handle_data(self, data):
        if self._col:
            self.texts[self._table][self._row][self._col] += data

    def handle_endtag(self, tag):
        if tag == "td":
            self._col = None
        elif tag == "table":
            self._table = self._row = None


def chromium(*args: str) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@needs_chromium
def test_console_errors_are_caught(tmp_path):
    """The check below can fail: a page with a script error shows up in Chromium's console log."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('boom'); nosuch();</script></body></html>")
    errors = console_errors(chromium("--dump-dom", page.as_uri()).stderr)
    assert any("boom" in e for e in errors) and any("nosuch" in e for e in errors)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@needs_chromium
def test_report_of_a_partial_pocket_grid_in_headless_chromium(tmp_path):
    runs = tmp_path / "runs"
    out = invoke(
        "compare",
        "--methods",
        "zeroshot",
        "adapter",
        "--config",
        "pocket",
        "--datasets",
        "pocket_dusk",
        "--seeds",
        "1",
        "2",
        "--shots",
        "2",
        "--output",
        runs,
        *QUICK,
    )
    assert out.exit_code == 0, out.output
    compare = json.loads((runs / "compare" / "base2new" / "compare.json").read_text())
    [adapter_dir] = (runs / "base2new").glob("adapter-*")
    gone = adapter_dir / "pocket_dusk" / "seed2" / "result-test_per_class3.json"
    gone.unlink()  # a partial grid: one run without its result
    page = tmp_path / "report.html"
    made = invoke("report", runs, "--output", page)
    assert made.exit_code == 0, made.output
    html = page.read_text()

    shot = tmp_path / "report.png"
    run = chromium("--screenshot=" + str(shot), "--window-size=1280,2000", page.as_uri())
    assert shot.is_file() and png_size(shot) == (1280, 2000), run.stderr[-2000:]
    assert console_errors(run.stderr) == []
    dom = chromium("--dump-dom", page.as_uri())
    assert console_errors(dom.stderr) == []
    cells = Cells()
    cells.feed(dom.stdout)

    # self-contained: every image is inline, nothing is fetched
    assert cells.sources and all(s.startswith("data:image/png;base64,") for s in cells.sources)
    assert "http://" not in html and "https://" not in html

    grid = cells.tables["base2new-grid"]
    # zeroshot's runs are all there: its row equals the compare table dra wrote
    written = {r["Method"]: r for r in compare["rows"]}
    for column, value in grid["zeroshot"].items():
        assert value == pytest.approx(written["zeroshot"][column], abs=1e-12), column
    # each per-dataset cell is the mean of the runs' JSON results
    for method_dir, label in ((adapter_dir, "adapter"), (next((runs / "base2new").glob("zeroshot-*")), "zeroshot")):
        for dataset in ("pocket_dusk",):
            results = [json.loads(p.read_text()) for p in sorted((method_dir / dataset).glob("seed*/result-*.json"))]
            for key, name in (("base", "Base"), ("new", "New")):
                column = f"{display_name(dataset)} {name}"
                expected = sum(r[key] for r in results) / len(results)
                assert grid[label][column] == pytest.approx(expected, abs=1e-9), (label, column)
    # the missing run: marked in its cell and listed with its folder
    dusk = display_name("pocket_dusk")
    partial = [t for c, t in cells.texts["base2new-grid"]["adapter"].items() if c.startswith(dusk) and "HM" not in c]
    assert len(partial) == 2 and all("1 of 2 seeds" in t for t in partial)
    assert "pocket_dusk/seed2" in html and "started (no result" in html
    # best marked, intervals over seeds, per-run curves, settings and the command
    assert 'class="best"' in html and "95% CI" in html
    assert html.count('alt="training curves') == 2  # adapter's 2 runs (zeroshot trains nothing: no curve)
    assert "lr: 0.025" in html  # the pocket settings of the runs


def test_report_of_a_folder_that_is_not_there_is_one_line(tmp_path):
    line = one_error_line(invoke("report", tmp_path / "nosuch"))
    assert "is not a folder" in line and "--output" in line
