"""DRA: dynamic-rank adapters in blocks h..L of both encoders (the paper's method)."""

from dra.adapters import DynamicRankAdapter
from dra.methods.adapted import AdaptedCLIP


class DRA(AdaptedCLIP):
    adapter_class = DynamicRankAdapter
