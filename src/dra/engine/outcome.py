"""Whether a finished training run went anywhere: its first and last epoch's mean training loss.

A run whose loss ends above where it began (a jump from 2.2 to 5.6 that never comes back, issue #17) has
*collapsed*: its accuracies are those of a broken model, and the protocol tables say so instead of
averaging it in silently. A non-finite loss never gets here: the trainer stops with `TrainingDivergedError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

COLLAPSED_NOTE = "collapsed: the last epoch's mean training loss is above the first epoch's (or not finite)"


def loss_outcome(history: Sequence[Mapping]) -> dict:
    """{"first_loss", "last_loss", "collapsed"} of a run's per-epoch history (`fit`'s records, each with the
    epoch's mean "loss"). No epochs (or no loss recorded): both losses None and not collapsed."""
    losses = [float(r["loss"]) for r in history if r.get("loss") is not None]
    if not losses:
        return {"first_loss": None, "last_loss": None, "collapsed": False}
    first, last = losses[0], losses[-1]
    collapsed = not (math.isfinite(first) and math.isfinite(last)) or last > first
    return {"first_loss": first, "last_loss": last, "collapsed": collapsed}
