"""Data the project draws itself, so that commands run with no data root: the `shapes` dataset
(`shapes.py`), the pocket world's scene renderer (`world.py`, a simulation) and the pocket benchmark's
tasks drawn from it (`pocket.py`), all written in CoOp's layout by `write.py`. The catalogue gives each
such dataset a `generate` hook; the registry calls it when no data root is given."""
