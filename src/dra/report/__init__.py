"""Results tables, plots and the token-rank visualisation.

* :mod:`dra.report.metrics` -- harmonic mean, seed mean/std.
* :mod:`dra.report.stats` -- sample std, the seeded 95 % bootstrap interval, paired differences.
* :mod:`dra.report.paired` -- the paired-difference table of ``dra compare --reference``.
* :mod:`dra.report.tables` -- the `Table` and its renderers (terminal, markdown, CSV, JSON).
* :mod:`dra.report.paper_tables` -- the paper's tables (1, 2, 3, 6) and the one ablation table.
* :mod:`dra.report.plots` -- base-to-new bars, the ablation plot, training curves (PNG, Agg).
* :mod:`dra.report.token_ranks` -- Fig. 4 rank maps, the noisy-order measure and the AUC of token scores.

The plotting names are imported lazily, so ``import dra.report`` does not load matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

from dra.report.metrics import harmonic_mean, mean_std
from dra.report.paper_tables import (
    DATASET_NAMES,
    ablation_table,
    base2new_table,
    cross_dataset_table,
    display_name,
    domain_gen_table,
    efficiency_table,
    method_base2new_table,
    method_transfer_table,
)
from dra.report.tables import Table, write

_LAZY = {
    "plot_base2new": "dra.report.plots",
    "plot_ablation": "dra.report.plots",
    "plot_curves": "dra.report.plots",
    "run_accuracies": "dra.report.plots",
    "image_rank_map": "dra.report.token_ranks",
    "plot_image_ranks": "dra.report.token_ranks",
    "plot_text_ranks": "dra.report.token_ranks",
    "order_agreement": "dra.report.token_ranks",
    "auc": "dra.report.token_ranks",
}

__all__ = [
    "harmonic_mean",
    "mean_std",
    "DATASET_NAMES",
    "Table",
    "display_name",
    "base2new_table",
    "cross_dataset_table",
    "domain_gen_table",
    "efficiency_table",
    "ablation_table",
    "write",
    "method_base2new_table",
    "method_transfer_table",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dra.report' has no attribute {name!r}")
