"""Datasets in CoOp's layout, Dassl-identical few-shot draws, base/new splits and transforms."""
