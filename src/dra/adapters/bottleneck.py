"""The one bound every adapter width obeys: a bottleneck no wider than the features it adapts.

A rank above the width adds nothing a full-rank map would not, and a typo (`dra.rank=100000`) would
otherwise try to allocate tens of GB before failing with a traceback.
"""

from __future__ import annotations

from dra.errors import SettingsError


def check_bottleneck(setting: str, value: int, width: int) -> int:
    """`value` when 1 <= value <= width; otherwise a SettingsError naming the setting and the bound."""
    if not 1 <= int(value) <= int(width):
        raise SettingsError(
            f"{setting}={value} does not fit the {width}-wide features it adapts; choose a value in [1, {width}]"
        )
    return int(value)
