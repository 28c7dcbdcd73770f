"""Benchmarks of dra's methods on the current device (kept out of the training engine).

`dra.benchmark.efficiency.measure_methods` measures paper Table 6 side by side in one process;
`dra.benchmark.cli.main` is the one command behind both `dra efficiency` and `benchmarks/efficiency.py`.
"""
