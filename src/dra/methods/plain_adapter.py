"""The plain adapter baseline (Table 4 "Baseline"): same placement and switches, no dynamic rank."""

from dra.adapters import PlainAdapter
from dra.methods.adapted import AdaptedCLIP


class PlainAdapterCLIP(AdaptedCLIP):
    adapter_class = PlainAdapter
