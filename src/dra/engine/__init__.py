"""Training loop, evaluation, inference (`predict`); the checkpoints they read and write are `dra.checkpoints`."""
