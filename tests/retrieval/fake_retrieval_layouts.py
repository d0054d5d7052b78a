"""Fake copies of the three retrieval sets' real layouts (folders, file names, annotation
files; the real class counts in the metadata) with images in classes at both ends of every
split's range, enough for P×K batches and a validation carve-out of the last training classes.
Images are 20×24 JPEGs (tests/data/fake_layouts.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from scipy.io import savemat

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))  # as tests/test_recipes.py does
import fake_layouts
from fake_layouts import _annotations, write_image

# CUB-200-2011 classes (1-based) with images: both ends of the train range (1–100) and of the
# test range (101–200); with val_classes 0.1 the validation classes are 91–100.
CUB_CLASSES = [1, 2, 3, 4, 92, 99, 100, 101, 102, 150, 199, 200]
# Cars-196 classes (1-based): train range 1–98 (validation 89–98 at 0.1), test 99–196.
CARS_CLASSES = [1, 2, 3, 4, 89, 97, 98, 99, 100, 150, 195, 196]
# SOP class ids: train 1–11,318, test 11,319–22,634 (the real ids' ranges).
SOP_TRAIN_CLASSES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 11318]
SOP_TEST_CLASSES = [11319, 11320, 20000, 22634]


def cub200(root: Path, images_per_class: int = 3) -> Path:
    """``CUB_200_2011/`` with ``images_per_class`` images in each of :data:`CUB_CLASSES`."""
    return fake_layouts.cub200(root, [c for c in CUB_CLASSES for _ in range(images_per_class)])


def stanford_cars(root: Path, images_per_class: int = 3) -> Path:
    """``stanford_cars/`` with each class of :data:`CARS_CLASSES` in *both* annotation files
    (the zero-shot split uses them together)."""
    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    names = [f"Make Model {i}" for i in range(1, 197)]
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": names})
    rows: dict[str, list[tuple[str, int]]] = {"cars_train": [], "cars_test": []}
    for label in CARS_CLASSES:
        for i in range(images_per_class):
            folder = "cars_train" if i % 2 == 0 else "cars_test"
            rows[folder].append((f"{len(rows[folder]) + 1:05d}.jpg", label))
    for folder, listing in rows.items():
        for i, (fname, _) in enumerate(listing):
            write_image(base / folder / fname, 1000 * len(folder) + i)
    savemat(
        base / "devkit" / "cars_train_annos.mat", {"annotations": _annotations(rows["cars_train"])}
    )
    savemat(
        base / "cars_test_annos_withlabels.mat", {"annotations": _annotations(rows["cars_test"])}
    )
    return root


def stanford_online_products(root: Path, images_per_class: int = 3) -> Path:
    """``Stanford_Online_Products/`` with Ebay_train.txt / Ebay_test.txt over the classes of
    :data:`SOP_TRAIN_CLASSES` / :data:`SOP_TEST_CLASSES`."""
    base = root / "Stanford_Online_Products"
    base.mkdir(parents=True)
    header = "image_id class_id super_class_id path\n"
    image_id = 0
    for name, classes in (
        ("Ebay_train.txt", SOP_TRAIN_CLASSES),
        ("Ebay_test.txt", SOP_TEST_CLASSES),
    ):
        lines = []
        for class_id in classes:
            for i in range(images_per_class):
                image_id += 1
                path = f"bicycle_final/{class_id}_{i}.JPG"
                write_image(base / path, image_id)
                lines.append(f"{image_id} {class_id} 1 {path}\n")
        (base / name).write_text(header + "".join(lines))
    return root


BY_RECIPE = {
    "sop": stanford_online_products,
    "cub200": cub200,
    "cars196": stanford_cars,
}
"""The layout of each retrieval recipe (assembled_lightning/recipes/retrieval/<name>.yaml)."""
