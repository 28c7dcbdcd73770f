"""`python -m dra ...` (and `torchrun ... -m dra ...`) run the command line."""

from dra.cli import main

main()
