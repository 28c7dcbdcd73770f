"""The pocket benchmark (a simulation) asks the paper's question (issue #17, part 2): which datasets are in
it, in what order, how large, and that no two of them ask the same thing."""

from __future__ import annotations

import pytest

from dra.data.generated import pocket as P

BENCHMARK = (
    "pocket_colour_shape",
    "pocket_pattern_shape",
    "pocket_count_colour",
    "pocket_colour_scene",  # compositional
    "pocket_shortcut",  # mechanism
    "pocket_dusk",
    "pocket_colours",  # shifts
)


def test_the_benchmark_is_the_flagged_datasets_in_this_order():
    from dra.data.registry import POCKET_BENCHMARK

    assert POCKET_BENCHMARK == P.POCKET_BENCHMARK == BENCHMARK
    assert [P.POCKET_DATASETS[n].kind for n in BENCHMARK] == ["compositional"] * 4 + ["mechanism"] + ["shift"] * 2
    registered = {n for n, d in P.POCKET_DATASETS.items() if not d.benchmark}
    assert registered == {"pocket_scenes", "pocket_objects", "pocket_shapes", "pocket_patterns", "pocket_counting"}


def test_pocket_yaml_runs_the_benchmark():
    """`configs/pocket.yaml` keeps a literal list (the YAML has no way to name a Python constant): this is
    what keeps it the registry's."""
    from dra.settings import load_settings

    assert tuple(load_settings("pocket").datasets) == P.POCKET_BENCHMARK


def test_every_benchmark_dataset_has_200_test_images_per_class_and_both_draws():
    from dra.data.registry import DATASETS

    for name in P.POCKET_BENCHMARK:
        spec = P.POCKET_DATASETS[name]
        assert spec.per_class == P.BENCHMARK_PER_CLASS == {"train": 32, "val": 16, "test": 200}, name
        n = len(spec.classnames)
        for registered in (name, f"{name}@dev"):
            assert DATASETS[registered].expected_counts == (32 * n, 16 * n, 200 * n), registered


def test_no_two_benchmark_datasets_ask_the_same_question():
    """Same class names (hence the same base / new split) => not both in the benchmark; most have >= 20
    classes; at most two are shifts (classes that are values the shipped CLIP already knows)."""
    classnames = [P.POCKET_DATASETS[n].classnames for n in P.POCKET_BENCHMARK]
    assert len(set(classnames)) == len(classnames)
    splits = [(P.POCKET_DATASETS[n].base_classes, P.POCKET_DATASETS[n].new_classes) for n in P.POCKET_BENCHMARK]
    assert len(set(splits)) == len(splits)
    assert sum(len(c) >= 20 for c in classnames) >= 4
    assert sum(P.POCKET_DATASETS[n].kind == "shift" for n in P.POCKET_BENCHMARK) <= 2
    # the rule bites: pocket_scenes shares pocket_dusk's classes and split, and stays out
    assert P.POCKET_DATASETS["pocket_scenes"].classnames == P.POCKET_DATASETS["pocket_dusk"].classnames
    assert "pocket_scenes" not in P.POCKET_BENCHMARK


def test_the_v5_layout_keeps_every_image():
    """datasets-v5 re-laid out pocket_dusk and pocket_colours (16 val / 200 test per class) and kept the
    seeds: image `index` of a class is the one datasets-v4 drew, so the training images are unchanged."""
    import random

    assert P.VERSION.endswith("/datasets-v5") and P.SEED_VERSION.endswith("/datasets-v4")
    scene, _ = P.scene_item("pocket_dusk", 2, 7)
    assert scene == P.POCKET_DATASETS["pocket_dusk"].scene_of(2, random.Random(f"{P.SEED_VERSION}/pocket_dusk/2/7"))


def test_the_demo_runs_three_benchmark_datasets_one_of_each_question():
    from dra.protocols.demo import DEMO_TEST_PER_CLASS, DEMO_THREADS, POCKET_DEMO

    assert set(POCKET_DEMO) <= set(P.POCKET_BENCHMARK) and len(POCKET_DEMO) == 3
    assert sorted(P.POCKET_DATASETS[n].kind for n in POCKET_DEMO) == ["compositional", "mechanism", "shift"]
    assert DEMO_TEST_PER_CLASS == 50 and DEMO_THREADS == 1


def test_the_demo_in_worker_processes_prints_what_one_process_prints(tmp_path, monkeypatch):
    """`dra demo` runs its methods in DEMO_PROCESSES spawned workers: the same records as in-process."""
    from dra import pocket
    from dra.protocols.demo import DEMO_PROCESSES, run_pocket_demo

    if not pocket.available():
        pytest.skip("the pocket CLIP's weights are not installed")
    assert DEMO_PROCESSES == 2
    monkeypatch.setenv("DRA_CACHE_DIR", str(tmp_path / "cache"))  # the spawned workers inherit it
    quick = ["train.epochs=1", "shots=2", "test_per_class=4"]
    kw = dict(methods=("zeroshot", "adapter"), datasets=("pocket_dusk",))
    one = run_pocket_demo(quick, str(tmp_path / "one"), "cpu", processes=1, **kw)
    two = run_pocket_demo(quick, str(tmp_path / "two"), "cpu", processes=2, **kw)
    assert one == two
    assert [r["method"] for r in one["rows"]] == ["zeroshot", "adapter"] and one["datasets"] == ["pocket_dusk"]
    marker = tmp_path / "cache" / "data" / "pocket_dusk" / ".complete"  # only the test images the demo scores
    assert marker.read_text().strip() == f"{P.VERSION}/test_per_class=4"
    assert len(list((marker.parent / "images").rglob("*.png"))) == 8 * (32 + 16 + 4)
