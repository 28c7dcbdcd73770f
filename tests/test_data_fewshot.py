"""Few-shot draws and base/new splits on synthetic lists (no files needed)."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import pytest

from dra.data import DataError, DatasetSplits, Datum, base_new_labels, fewshot, subsample_classes


def _items(counts: dict[int, int], prefix: str) -> list[Datum]:
    """Items grouped per label in the given label order; names carry split, label and index."""
    return [Datum(f"/x/{prefix}_{y}_{i}.jpg", y, f"class {y}") for y, n in counts.items() for i in range(n)]


def _splits(train_counts, val_counts, test_counts=None, val_is_test=False, n_classes=None) -> DatasetSplits:
    labels = set(train_counts) | set(val_counts) | set(test_counts or {})
    n = n_classes or (max(labels) + 1)
    test = _items(test_counts or {y: 3 for y in range(n)}, "test")
    return DatasetSplits(
        train=_items(train_counts, "train"),
        val=list(test) if val_is_test else _items(val_counts, "val"),
        test=test,
        classnames=[f"class {y}" for y in range(n)],
        name="toy",
        image_dir=Path("/x"),
        val_is_test=val_is_test,
    )


def _dassl_reference(train, val, shots, seed):
    """An independent transcription of CoOp + Dassl with the *global* `random`, as they run it."""
    state = random.getstate()
    try:
        random.seed(seed)  # Dassl's set_random_seed

        def generate(data_source, num_shots):
            tracker = defaultdict(list)
            for item in data_source:
                tracker[item.label].append(item)
            dataset = []
            for _label, items in tracker.items():
                if len(items) >= num_shots:
                    sampled_items = random.sample(items, num_shots)
                else:
                    sampled_items = items
                dataset.extend(sampled_items)
            return dataset

        return generate(train, shots), generate(val, min(shots, 4))
    finally:
        random.setstate(state)


def test_matches_dassl_reference_for_several_seeds_and_shots():
    s = _splits({2: 30, 0: 25, 1: 3, 3: 17}, {0: 10, 2: 2, 1: 7, 3: 9})
    for seed in (1, 2, 3, 17):
        for shots in (1, 2, 4, 8, 16):
            got = fewshot(s, shots, seed)
            ref_train, ref_val = _dassl_reference(s.train, s.val, shots, seed)
            assert got.train == ref_train
            assert got.val == ref_val
            assert got.test == s.test


def test_same_seed_same_list_other_seed_other_list():
    s = _splits({0: 50, 1: 50, 2: 50}, {0: 20, 1: 20, 2: 20})
    a, b, c = fewshot(s, 16, 1), fewshot(s, 16, 1), fewshot(s, 16, 2)
    assert a.train == b.train and a.val == b.val
    assert a.train != c.train
    assert {d.label for d in a.train} == {d.label for d in c.train}


def test_groups_in_order_of_first_appearance_and_sample_order_kept():
    s = _splits({2: 20, 0: 20, 1: 20}, {})
    got = fewshot(s, 5, 3).train
    assert [d.label for d in got] == [2] * 5 + [0] * 5 + [1] * 5
    rng = random.Random(3)
    expected = rng.sample([d for d in s.train if d.label == 2], 5)
    assert got[:5] == expected  # the order rng.sample returns, never sorted
    assert got[:5] != sorted(got[:5], key=lambda d: int(d.impath.rsplit("_", 1)[1][:-4]))  # not sorted


def test_shots_larger_than_a_class_take_it_whole_and_draw_nothing():
    with_small = _splits({0: 20, 1: 3, 2: 20}, {})
    without_small = _splits({0: 20, 2: 20}, {})
    got = fewshot(with_small, 5, 1).train
    assert [d for d in got if d.label == 1] == [d for d in with_small.train if d.label == 1]  # file order
    # the small class consumed no random numbers: the other classes get the same images
    assert [d for d in got if d.label != 1] == fewshot(without_small, 5, 1).train
    # every class smaller than K: the whole list, unchanged
    assert fewshot(with_small, 100, 1).train == with_small.train


def test_val_shots_are_min_k_4_and_continue_the_same_generator():
    s = _splits({0: 30, 1: 30}, {0: 10, 1: 10})
    for shots, per_class in ((16, 4), (4, 4), (2, 2), (1, 1)):
        val = fewshot(s, shots, 1).val
        assert [d.label for d in val] == [0] * per_class + [1] * per_class
    rng = random.Random(1)
    for y in (0, 1):
        rng.sample([d for d in s.train if d.label == y], 16)
    expected = [x for y in (0, 1) for x in rng.sample([d for d in s.val if d.label == y], 4)]
    assert fewshot(s, 16, 1).val == expected


def test_no_shots_means_the_full_splits_and_shots_below_one_are_errors():
    s = _splits({0: 30, 1: 30}, {0: 10, 1: 10})
    assert fewshot(s, None, 1) is s
    for shots in (0, -1):  # they used to mean "all" silently
        with pytest.raises(DataError, match=rf"shots must be an integer >= 1, got {shots}"):
            fewshot(s, shots, 1)


def test_val_is_test_is_never_sampled():
    s = _splits({0: 30, 1: 30}, {}, test_counts={0: 50, 1: 50}, val_is_test=True)
    got = fewshot(s, 16, 1)
    assert len(got.train) == 32
    assert got.val == s.test and got.test == s.test


def test_base_new_split_sorted_labels_ceil_half_relabelled_in_order():
    s = _splits({4: 6, 0: 6, 2: 6, 1: 6, 3: 6}, {3: 2, 0: 2, 4: 2}, test_counts={y: 4 for y in (4, 3, 2, 1, 0)})
    assert base_new_labels(s) == ([0, 1, 2], [3, 4])
    base = subsample_classes(s, "base")
    new = subsample_classes(s, "new")
    assert base.classnames == ["class 0", "class 1", "class 2"]
    assert new.classnames == ["class 3", "class 4"]
    # filtered in order, labels = index within the group, class names kept
    assert [(d.impath, d.label) for d in new.train] == [
        (d.impath, {4: 1, 3: 0}[d.label]) for d in s.train if d.label in (3, 4)
    ]
    assert all(d.classname == new.classnames[d.label] for d in new.train + new.val + new.test)
    assert all(d.classname == base.classnames[d.label] for d in base.train + base.val + base.test)
    assert len(base.test) == 12 and len(new.test) == 8 and len(base.val) == 2 and len(new.val) == 4
    assert subsample_classes(s, "all") is s


def test_base_new_after_fewshot_counts():
    s = _splits({y: 30 for y in range(10)}, {y: 10 for y in range(10)}, test_counts={y: 7 for y in range(10)})
    base = subsample_classes(fewshot(s, 16, 1), "base")
    assert (len(base.train), len(base.val), len(base.test), len(base.classnames)) == (80, 20, 35, 5)


def test_subsample_test_only_dataset_uses_all_labels():
    s = DatasetSplits(
        train=[],
        val=[],
        test=_items({y: 2 for y in range(5)}, "t"),
        classnames=[f"class {y}" for y in range(5)],
        name="toy",
        image_dir=Path("/x"),
    )
    assert len(subsample_classes(s, "new").test) == 4
    assert subsample_classes(s, "new").classnames == ["class 3", "class 4"]


def test_subsample_rejects_unknown_mode():
    s = _splits({0: 2, 1: 2}, {})
    with pytest.raises(DataError, match="base"):
        subsample_classes(s, "half")
