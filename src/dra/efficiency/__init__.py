"""Speed and memory of dra's methods on the current device (paper Table 6), kept out of the training engine.

`dra.efficiency.measure.measure_methods` measures the methods side by side in one process (`share_weights`
gives each method its own module tree over one backbone's weights); `dra.efficiency.mma` builds the
official MMA code's model for the side-by-side rows; `dra efficiency` and `benchmarks/efficiency.py` are one
command (`dra.cli.efficiency.main`), whose record (target ratios, machine, markdown page) is
`dra.efficiency.record`.
"""
