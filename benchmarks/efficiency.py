#!/usr/bin/env python
"""Paper Table 6 on this machine: the same command, options and defaults as `dra efficiency`.

    PYTHONPATH=src python benchmarks/efficiency.py --num-classes 5 100 --out benchmarks/results
    PYTHONPATH=src python benchmarks/efficiency.py --help

The options are defined once, in `dra.cli.efficiency`; what is measured: benchmarks/README.md.
"""

import sys

from dra.cli.efficiency import main

if __name__ == "__main__":
    sys.exit(main(prog="benchmarks/efficiency.py"))
