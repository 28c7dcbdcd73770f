"""Launching a grid of runs: each (method, dataset, seed, settings) run is one job.

    units.py     the grid as plain-data units (one per run folder), and which are done
    job.py       what one job does (run one unit in a fresh process), also `python -m dra.launch.job UNIT.json`
    backends.py  where jobs run: N local processes (concurrent.futures + subprocess) or submitit
                 (SLURM, or submitit's local executor)
    progress.py  the live table of pending / running / done / failed
    grid.py      launch: skip what is done, dry-run, submit, wait, collect the failures

The tables are built afterwards by the protocols themselves in gather mode (`Experiment(gather=...)`),
which reads the run folders and trains nothing, so a launched grid and an in-process one give the
same tables.
"""
