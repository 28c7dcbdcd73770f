"""`dra settings` gives, for every method x protocol x the datasets listed, the published recipe (tests/recipes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dra.methods import method_names
from dra.recipe import run_settings
from recipes import RECIPES, lookup, markdown_table

CASES = [(r, p, d) for r in RECIPES for p in r.protocols for d in r.datasets]


@pytest.mark.parametrize("recipe,protocol,dataset", CASES, ids=lambda x: x if isinstance(x, str) else x.method)
def test_merged_settings_hold_the_published_recipe(recipe, protocol, dataset):
    settings = run_settings(recipe.method, protocol, dataset)
    got = {k: lookup(settings, k) for k in recipe.values}
    want = {k: pytest.approx(v) if isinstance(v, float) else v for k, v in recipe.values.items()}
    assert got == want, recipe.source


def test_every_method_and_protocol_has_a_recipe():
    covered = {(r.method, p) for r in RECIPES for p in r.protocols}
    assert {m for m, _ in covered} == set(method_names())
    assert covered == {(m, p) for m in method_names() for p in ("base2new", "cross_dataset", "domain_gen")}


def test_docs_show_the_recipe_table():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "baselines.md").read_text()
    assert markdown_table() in docs, "regenerate it: python tests/recipes.py"


def test_a_method_without_sgd_shows_no_train_block():
    assert "train" not in run_settings("lfa", "base2new", "eurosat")
    assert "train" not in run_settings("zeroshot", "base2new", "eurosat")
    assert run_settings("clip_lora", "base2new", "eurosat", ["shots=4"])["train"]["iterations"] == 2000
