"""Few-shot draws and base/new class splits, identical to CoOp + Dassl.

Dassl (`DatasetBase.generate_fewshot_dataset`) draws with the *global* `random` module right after
`set_random_seed(cfg.SEED)`; CoOp's dataset classes call it first on the train list with K shots,
then on the val list with `min(K, 4)` shots. Here the same calls run on a private
`random.Random(seed)`, which starts in the same state as `random.seed(seed)`, so the same seed gives
the very same images, in the same order, as the published runs:

* items are grouped by label in order of first appearance (a dict keyed by label), each group
  keeping file order;
* a group with at least K items contributes `rng.sample(group, K)`, in the order returned;
  a smaller group is taken whole and consumes no random numbers (Dassl's `repeat=False`);
* the val draw continues the same generator; test is never sampled.

`subsample_classes` is CoOp's `OxfordPets.subsample_classes`: the sorted labels present in the
(few-shot) train list, the first `ceil(n/2)` are "base", the rest "new"; every list is filtered in
order and relabelled to the index within the selected group.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Sequence

from dra.data.core import DOCS_HINT, DataError, DatasetSplits, Datum

VAL_SHOTS_CAP = 4  # CoOp: val = generate_fewshot_dataset(val, num_shots=min(num_shots, 4))
SUBSAMPLES = ("all", "base", "new")


def group_by_label(items: Sequence[Datum]) -> dict[int, list[Datum]]:
    """Dassl's `split_dataset_by_label`: label -> items, labels in order of first appearance."""
    groups: dict[int, list[Datum]] = {}
    for item in items:
        groups.setdefault(item.label, []).append(item)
    return groups


def check_shots(shots: int | None) -> None:
    """`shots` is None (all images) or an integer >= 1; 0 and negative values no longer mean "all"."""
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
        raise DataError(
            f"shots must be an integer >= 1, got {shots!r} (0 no longer means all images: use all, "
            f"or leave shots out); {DOCS_HINT}"
        )


def draw_per_class(items: Sequence[Datum], shots: int, rng: random.Random) -> list[Datum]:
    """K items per label, exactly as one call of Dassl's `generate_fewshot_dataset` (repeat=False)."""
    check_shots(shots)
    if shots is None:
        return list(items)
    out: list[Datum] = []
    for group in group_by_label(items).values():
        if len(group) >= shots:
            out.extend(rng.sample(group, shots))
        else:
            out.extend(group)
    return out


def fewshot(splits: DatasetSplits, shots: int | None, seed: int) -> DatasetSplits:
    """The Dassl/CoOp few-shot version of `splits` for `seed`.

    `shots` of None returns `splits` unchanged (CoOp's NUM_SHOTS <= 0); 0 or a negative value raises
    `DataError`. Train gets `shots` per class; val gets `min(shots, 4)` per class from the same
    generator, unless the dataset's val list is its test list (ImageNet), which CoOp never samples;
    test stays whole.
    """
    check_shots(shots)
    if shots is None:
        return splits
    rng = random.Random(seed)
    train = draw_per_class(splits.train, shots, rng)
    if splits.val_is_test:
        val = list(splits.val)
    else:
        val = draw_per_class(splits.val, min(shots, VAL_SHOTS_CAP), rng)
    return replace(splits, train=train, val=val, test=list(splits.test))


def base_count(n: int) -> int:
    """How many of n sorted classes are base classes in base-to-new (CoOp's rule): the first ceil(n/2)."""
    return math.ceil(n / 2)


def base_new_labels(splits: DatasetSplits) -> tuple[list[int], list[int]]:
    """(base labels, new labels): sorted labels of the train list split at ceil(n/2).

    A test-only dataset (no train list, e.g. ImageNet-R) splits all its labels the same way.
    """
    labels = sorted({d.label for d in splits.train}) or list(range(len(splits.classnames)))
    m = base_count(len(labels))
    return labels[:m], labels[m:]


def subsample_classes(splits: DatasetSplits, subsample: str = "all") -> DatasetSplits:
    """Keep all, the base or the new classes; labels remapped to 0..m-1, class names kept."""
    if subsample not in SUBSAMPLES:
        raise DataError(f"subsample must be one of {', '.join(SUBSAMPLES)}, not {subsample!r}; {DOCS_HINT}")
    if subsample == "all":
        return splits
    base, new = base_new_labels(splits)
    selected = base if subsample == "base" else new
    if not selected:
        raise DataError(
            f"{splits.name}: no {subsample} classes: base-to-new splits the classes in two halves and "
            f"{splits.name} has {len(base) + len(new)} class(es) with training images; it needs at least 2; {DOCS_HINT}"
        )
    relabel = {old: new_label for new_label, old in enumerate(selected)}

    def _filter(items: Sequence[Datum]) -> list[Datum]:
        return [
            Datum(impath=d.impath, label=relabel[d.label], classname=d.classname) for d in items if d.label in relabel
        ]

    return replace(
        splits,
        train=_filter(splits.train),
        val=_filter(splits.val),
        test=_filter(splits.test),
        classnames=[splits.classnames[old] for old in selected],
    )
