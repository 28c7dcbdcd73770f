"""Shared fixtures: small real open_clip architectures with random weights, a batch of the embedded
`shapes` images, and the real data of `../shared/data` where it exists.

Every test of the protocols, the CLI, the engine, DDP, transfer and the losses runs on the embedded
`shapes` dataset, so a fresh clone runs them all. Only the tests about the real data itself (EuroSAT's
counts, Dassl's draw, CoOp's split files) need `../shared/data`; they carry the `shared_data` marker,
skip with a reason naming the missing path, and the run's header and summary say how many there are.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import settings as hypothesis_settings

# The fuzz tests draw the same examples on every run (CI must not pass or fail by chance); a new bug
# they find by varying the seed locally (`--hypothesis-seed`) becomes an @example of its test.
hypothesis_settings.register_profile("dra", derandomize=True, database=None)
hypothesis_settings.load_profile("dra")

sys.path.insert(0, str(Path(__file__).parent))  # tests/reference.py and friends
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the suite never touches the network
torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TINY = "ViT-Tiny-16-test"

requires_shared = pytest.mark.shared_data
_SHARED_ITEMS = pytest.StashKey[list]()


def shared_eurosat() -> Path:
    root = SHARED_DATA / "eurosat"
    if not (root / "split_zhou_EuroSAT.json").is_file():
        pytest.skip(f"real EuroSAT not found at {root} (the shared test data sits beside the repository)")
    return root


# -- the visible account of what needs ../shared/data ------------------------------------------------


def pytest_report_header(config):
    state = "found" if SHARED_DATA.is_dir() else "NOT found (tests marked shared_data will skip)"
    return f"shared data: {SHARED_DATA} {state}"


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(config, items):
    config.stash[_SHARED_ITEMS] = [item.nodeid for item in items if item.get_closest_marker("shared_data")]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    needing = set(config.stash.get(_SHARED_ITEMS, []))
    if not needing:
        return
    skipped = sum(1 for r in terminalreporter.stats.get("skipped", []) if r.nodeid in needing)
    terminalreporter.write_sep("-", "shared data")
    if SHARED_DATA.is_dir():
        line = f"{SHARED_DATA} found: {len(needing)} test(s) use the real data, {skipped} of them skipped"
    else:
        line = (
            f"{SHARED_DATA} NOT found: {skipped} of the {len(needing)} test(s) that need the real data "
            f"(EuroSAT, CoOp split files) skipped; every other test runs on the embedded shapes set"
        )
    terminalreporter.write_line(line)


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture
def tiny_backbone():
    from dra.backbones import load_backbone

    torch.manual_seed(0)
    return load_backbone(TINY)


def meta_backbone(name):
    """`load_backbone(name)` with every backbone tensor on the meta device: shapes only, no memory, no init.

    For tests that only count parameters or check metadata (ViT-B, ViT-L); the adapters are built as usual.
    """
    import open_clip

    import dra.backbones.loading as loading
    from dra.backbones import load_backbone

    real = open_clip.create_model

    def create_on_meta(*args, **kwargs):
        with torch.device("meta"):
            return real(*args, **{**kwargs, "device": "meta"})

    with pytest.MonkeyPatch.context() as mp:  # only for this one build
        mp.setattr(loading.open_clip, "create_model", create_on_meta)
        return load_backbone(name)
