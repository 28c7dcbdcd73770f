"""Cross-dataset and domain generalisation end to end, on a throw-away ImageNet-layout tree with the
embedded shapes set as the cross-dataset target (so it runs in any clone)."""

from __future__ import annotations

import json

import pytest

from conftest import TINY
from data_fixtures import class_folder_tree, write_classnames
from dra.data import data_cache_dir
from dra.data.generated.shapes import make_shapes
from dra.protocols import transfer
from dra.settings import load_settings

WNIDS = {"n01000001": "goldfish", "n01000002": "tree frog", "n01000003": "hen", "n01000004": "ox"}


def fake_imagenet(root):
    """ImageNet (4 classes, 6 train / 3 val images each) and the four variants, tiny placeholder images."""
    # classnames.txt lists all 1000 classes (V2 folders are line numbers); only 4 have images here.
    others = [(f"n09{i:06d}", f"class {i}") for i in range(996)]
    write_classnames(root / "imagenet" / "classnames.txt", [*sorted(WNIDS.items()), *others])
    class_folder_tree(root / "imagenet" / "images" / "train", {w: [f"{w}_{i}.JPEG" for i in range(6)] for w in WNIDS})
    class_folder_tree(root / "imagenet" / "images" / "val", {w: [f"v{i}.JPEG" for i in range(3)] for w in WNIDS})
    v2 = root / "imagenetv2" / "imagenetv2-matched-frequency-format-val"
    class_folder_tree(v2, {str(i): ["a.jpeg", "b.jpeg"] for i in range(4)})
    for i in range(4, 1000):  # V2 has a folder per class; the other 996 stay empty here
        (v2 / str(i)).mkdir()
    class_folder_tree(root / "imagenet-sketch" / "images", {w: ["s.JPEG"] for w in WNIDS})
    class_folder_tree(root / "imagenet-adversarial" / "imagenet-a", {w: ["a.jpg"] for w in list(WNIDS)[:2]})
    class_folder_tree(root / "imagenet-rendition" / "imagenet-r", {w: ["r.jpg"] for w in list(WNIDS)[1:]})


QUICK = [
    "dra.start_layer=5",
    "train.epochs=1",
    "train.batch_size=4",
    "train.num_workers=0",
    "eval.num_workers=0",
    "eval.batch_size=8",
]


def cfg_for(name, tmp_path, data_root, **values):
    cfg = load_settings(
        name,
        {
            "model": TINY,
            "seeds": [1],
            "shots": 2,
            "data_root": str(data_root),
            "output": str(tmp_path / "out"),
            **values,
        },
        QUICK,
    )
    cfg.pretrained = None
    return cfg


def test_domain_gen_then_cross_dataset_share_the_source_run(tmp_path, monkeypatch):
    root = tmp_path / "data"
    fake_imagenet(root)
    (root / "shapes").symlink_to(make_shapes(data_cache_dir()) / "shapes")  # a real target beside the fake source
    lines = []
    dg = transfer.run(cfg_for("domain_gen", tmp_path, root), echo=lines.append)
    accs = {r["dataset"]: r for r in dg["records"]}
    assert list(accs) == ["imagenet", "imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"]
    assert [accs[d]["test"] for d in accs] == [12, 8, 4, 2, 3]
    table = json.loads((dg["output"] / "domain_gen.json").read_text())
    row = table["rows"][0]
    variants = [accs[d]["accuracy"] for d in ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")]
    assert row["Avg"] == pytest.approx(sum(variants) / 4)

    import dra.engine.trainer as trainer

    # The finished ImageNet run is loaded from its folder, not trained again.
    monkeypatch.setattr(trainer, "_end_of_epoch", lambda *a, **k: pytest.fail("the shared ImageNet run was retrained"))
    xd = transfer.run(cfg_for("cross_dataset", tmp_path, root, targets=["shapes"], test_per_class=2), echo=lines.append)
    assert [r["dataset"] for r in xd["records"]] == ["imagenet", "shapes"]
    assert xd["records"][1]["test"] == 20  # 10 shapes classes x 2
    # Another evaluation (2 test images per class) of the same trained run: evaluated again, not reused.
    assert xd["records"][0]["test"] == 8 and accs["imagenet"]["test"] == 12
    assert (xd["output"] / "cross_dataset.md").is_file()
