"""The catalogue: every dataset the library knows by name, as a `DatasetSpec` table (CoOp's eleven
benchmark datasets, the four ImageNet variants, and the generated `shapes` and pocket-world tasks),
and the named lists the protocols use (`BASE_TO_NEW_DATASETS`, `DOMAIN_SHIFT_DATASETS`,
`POCKET_BENCHMARK`). Folder names, split files and counts are CoOp's."""

from __future__ import annotations

import functools

from dra.data.generated.pocket import DRAWS, POCKET_DATASETS, draw_name, make_pocket_dataset
from dra.data.generated.pocket import POCKET_BENCHMARK as POCKET_BENCHMARK  # re-exported: one list of datasets
from dra.data.generated.shapes import SHAPES_CLASSES, SHAPES_COUNTS, make_shapes
from dra.data.generated.shapes import SPLIT_FILE as SHAPES_SPLIT_FILE
from dra.data.readers import (
    read_fgvc_aircraft,
    read_imagenet,
    read_imagenet_wnid_variant,
    read_imagenetv2,
    read_split_file_dataset,
)
from dra.data.spec import DatasetSpec


def _split_spec(name, title, folder, image_subdir, split_file, n, counts, aliases=(), **kw) -> DatasetSpec:
    img = f"{folder}/{image_subdir}/" if image_subdir else f"{folder}/"
    return DatasetSpec(
        name=name,
        title=title,
        folder=folder,
        image_subdir=image_subdir,
        layout=f"<data-root>/{img}... and <data-root>/{folder}/{split_file}",
        reader=read_split_file_dataset,
        split_file=split_file,
        num_classes=n,
        expected_counts=counts,
        aliases=aliases,
        **kw,
    )


def _variant_spec(name, title, folder, image_subdir, n, count, reader, aliases=()) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        title=title,
        folder=folder,
        image_subdir=image_subdir,
        layout=f"<data-root>/{folder}/{image_subdir}/<class folder>/* and classnames.txt in "
        f"<data-root>/{folder}/ or <data-root>/imagenet/",
        reader=reader,
        num_classes=n,
        expected_counts=(0, 0, count),
        test_only=True,
        aliases=aliases,
    )


_SPECS = [
    DatasetSpec(
        name="imagenet",
        title="ImageNet",
        folder="imagenet",
        image_subdir="images",
        layout="<data-root>/imagenet/images/{train,val}/<wnid>/* and <data-root>/imagenet/classnames.txt",
        reader=read_imagenet,
        num_classes=1000,
        expected_counts=(1_281_167, 50_000, 50_000),
    ),
    _split_spec(
        "caltech101",
        "Caltech101",
        "caltech-101",
        "101_ObjectCategories",
        "split_zhou_Caltech101.json",
        100,
        (4128, 1649, 2465),
        aliases=("caltech-101",),
    ),
    _split_spec(
        "oxford_pets",
        "OxfordPets",
        "oxford_pets",
        "images",
        "split_zhou_OxfordPets.json",
        37,
        (2944, 736, 3669),
        aliases=("pets",),
    ),
    _split_spec(
        "stanford_cars",
        "StanfordCars",
        "stanford_cars",
        "",
        "split_zhou_StanfordCars.json",
        196,
        (6509, 1635, 8041),
        aliases=("cars",),
    ),
    _split_spec(
        "oxford_flowers",
        "Flowers102",
        "oxford_flowers",
        "jpg",
        "split_zhou_OxfordFlowers.json",
        102,
        (4093, 1633, 2463),
        aliases=("flowers", "flowers102"),
    ),
    _split_spec(
        "food101",
        "Food101",
        "food-101",
        "images",
        "split_zhou_Food101.json",
        101,
        (50500, 20200, 30300),
        aliases=("food-101", "food"),
    ),
    DatasetSpec(
        name="fgvc_aircraft",
        title="FGVCAircraft",
        folder="fgvc_aircraft",
        image_subdir="images",
        layout="<data-root>/fgvc_aircraft/images/*.jpg, variants.txt and images_variant_{train,val,test}.txt "
        "in <data-root>/fgvc_aircraft/",
        reader=read_fgvc_aircraft,
        num_classes=100,
        expected_counts=(3334, 3333, 3333),
        aliases=("aircraft", "fgvcaircraft"),
    ),
    _split_spec("sun397", "SUN397", "sun397", "SUN397", "split_zhou_SUN397.json", 397, (15880, 3970, 19850)),
    _split_spec(
        "dtd",
        "DTD",
        "dtd",
        "images",
        "split_zhou_DescribableTextures.json",
        47,
        (2820, 1128, 1692),
        aliases=("describabletextures",),
    ),
    _split_spec("eurosat", "EuroSAT", "eurosat", "2750", "split_zhou_EuroSAT.json", 10, (13500, 5400, 8100)),
    _split_spec("ucf101", "UCF101", "ucf101", "UCF-101-midframes", "split_zhou_UCF101.json", 101, (7639, 1898, 3783)),
    _variant_spec(
        "imagenetv2",
        "ImageNet-V2",
        "imagenetv2",
        "imagenetv2-matched-frequency-format-val",
        1000,
        10_000,
        read_imagenetv2,
        aliases=("imagenet-v2",),
    ),
    _variant_spec(
        "imagenet_sketch",
        "ImageNet-Sketch",
        "imagenet-sketch",
        "images",
        1000,
        50_889,
        read_imagenet_wnid_variant,
        aliases=("imagenet-sketch",),
    ),
    _variant_spec(
        "imagenet_a",
        "ImageNet-A",
        "imagenet-adversarial",
        "imagenet-a",
        200,
        7_500,
        read_imagenet_wnid_variant,
        aliases=("imagenet-a", "imagenet-adversarial"),
    ),
    _variant_spec(
        "imagenet_r",
        "ImageNet-R",
        "imagenet-rendition",
        "imagenet-r",
        200,
        30_000,
        read_imagenet_wnid_variant,
        aliases=("imagenet-r", "imagenet-rendition"),
    ),
    _split_spec(
        "shapes",
        "Shapes",
        "shapes",
        "images",
        SHAPES_SPLIT_FILE,
        len(SHAPES_CLASSES),
        SHAPES_COUNTS,
        generate=make_shapes,
    ),
    # The pocket benchmark: generated from the pocket world (a simulation; see docs/pocket.md), each
    # dataset in its test draw (`pocket_x`, reported) and its dev draw (`pocket_x@dev`, for tuning).
    *(
        _split_spec(
            draw_name(p.name, draw),
            p.title if draw == "test" else p.title.replace("(simulation)", "(simulation, dev draw)"),
            draw_name(p.name, draw),
            "images",
            p.split_file,
            len(p.classnames),
            p.counts,
            generate=functools.partial(make_pocket_dataset, p.name, draw=draw),
            generates_test_prefix=True,
        )
        for draw in DRAWS
        for p in POCKET_DATASETS.values()
    ),
]

DATASETS: dict[str, DatasetSpec] = {s.name: s for s in _SPECS}

# The 11 datasets of the base-to-new table, in the papers' order; the 4 domain-shift targets.
BASE_TO_NEW_DATASETS = (
    "imagenet",
    "caltech101",
    "oxford_pets",
    "stanford_cars",
    "oxford_flowers",
    "food101",
    "fgvc_aircraft",
    "sun397",
    "dtd",
    "eurosat",
    "ucf101",
)
DOMAIN_SHIFT_DATASETS = ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")
# POCKET_BENCHMARK (imported above, re-exported): the pocket world's benchmark tasks (a simulation)
