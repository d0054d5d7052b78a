"""Tiny on-disk copies of each data set's real layout: same folders, file names, metadata and
split files, with a few 20×24 JPEGs. Class counts in the metadata are the real ones."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

WNIDS = ["n01440764", "n01443537", "n01484850"]
# DataModule options for these tiny images: small batches and crops, no workers.
TINY_OPTIONS = {
    "batch_size": 2,
    "num_workers": 0,
    "train_size": 16,
    "eval_type": "imagenet_16",
    "pin_memory": False,
}


def write_image(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")
    return path


def imagenet(root: Path, val: str = "folders") -> Path:
    """train/<wnid>/*.JPEG (2 each); val as class folders, or flat with a labels file."""
    for c, wnid in enumerate(WNIDS):
        for i in range(2):
            write_image(root / "train" / wnid / f"{wnid}_{i}.JPEG", 10 * c + i)
    labels = [WNIDS[i % 3] for i in range(6)]
    for i, wnid in enumerate(labels):
        name = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        write_image(root / "val" / (wnid if val == "folders" else "") / name, 100 + i)
    if val == "synsets":
        (root / "val_labels.txt").write_text("\n".join(labels) + "\n")
    if val == "kaggle":
        rows = [f"ILSVRC2012_val_{i + 1:08d},{w} 1 2 3 4" for i, w in enumerate(labels)]
        (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows))
    return root


def food101(root: Path) -> Path:
    base = root / "food-101"
    classes = ["apple_pie", "baby_back_ribs", *(f"dish_{i:03d}" for i in range(99))]
    (base / "meta").mkdir(parents=True)
    (base / "meta" / "classes.txt").write_text("\n".join(classes) + "\n")
    splits: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for c, name in enumerate(classes[:2]):
        for i in range(3):
            split = "train" if i < 2 else "test"
            splits[split].setdefault(name, []).append(f"{name}/{1000 * c + i}")
            write_image(base / "images" / name / f"{1000 * c + i}.jpg", 10 * c + i)
    for split, listing in splits.items():
        (base / "meta" / f"{split}.json").write_text(json.dumps(listing))
    return root


def _annotations(rows: list[tuple[str, int]]) -> np.ndarray:
    table = np.zeros(len(rows), dtype=[("bbox_x1", "O"), ("fname", "O"), ("class", "O")])
    for i, (fname, label) in enumerate(rows):
        table[i] = (0, fname, label)
    return table


def stanford_cars(root: Path) -> Path:
    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    names = np.array([f"Make Model {i}" for i in range(196)], dtype=object)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": names})
    train = [("00001.jpg", 1), ("00002.jpg", 196), ("00003.jpg", 5)]
    test = [("00001.jpg", 196), ("00002.jpg", 1)]
    savemat(base / "devkit" / "cars_train_annos.mat", {"annotations": _annotations(train)})
    savemat(base / "cars_test_annos_withlabels.mat", {"annotations": _annotations(test)})
    for folder, rows in (("cars_train", train), ("cars_test", test)):
        for i, (fname, _) in enumerate(rows):
            write_image(base / folder / fname, i)
    return root


def flowers102(root: Path) -> Path:
    base = root / "flowers-102"
    labels = np.array([1, 1, 2, 102, 50, 2, 3, 3])  # image_00001 .. image_00008, 1-based
    for i in range(1, 9):
        write_image(base / "jpg" / f"image_{i:05d}.jpg", i)
    savemat(base / "imagelabels.mat", {"labels": labels})
    savemat(
        base / "setid.mat",
        {"trnid": np.array([1, 3]), "valid": np.array([2, 4]), "tstid": np.array([5, 6, 7, 8])},
    )
    return root


def fgvc_aircraft(root: Path) -> Path:
    data = root / "fgvc-aircraft-2013b" / "data"
    variants = ["707-320", "727-200", *(f"Variant {i}" for i in range(98))]
    data.mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    trainval = [
        ("1025794", "707-320"),
        ("1340192", "727-200"),
        ("0056978", "Variant 97"),
        ("1025795", "707-320"),  # a second image of a class: a held-out val_fraction split
    ]
    test = [("1514522", "707-320"), ("0062765", "Variant 3")]
    for split, rows in (("trainval", trainval), ("test", test)):
        (data / f"images_variant_{split}.txt").write_text("".join(f"{i} {v}\n" for i, v in rows))
        for n, (image, _) in enumerate(rows):
            write_image(data / "images" / f"{image}.jpg", n)
    return root


def oxford_pets(root: Path) -> Path:
    base = root / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True)
    trainval = [
        ("Abyssinian_100", 1, 1),
        ("american_bulldog_10", 2, 2),
        ("yorkshire_terrier_1", 37, 2),
        ("Abyssinian_102", 1, 1),  # a second image of a class: a held-out val_fraction split
    ]
    test = [("Abyssinian_101", 1, 1), ("yorkshire_terrier_2", 37, 2)]
    for split, rows in (("trainval", trainval), ("test", test)):
        lines = ["#Image CLASS-ID SPECIES BREED ID"]
        lines += [f"{image} {label} {species} 1" for image, label, species in rows]
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
        for n, (image, _, _) in enumerate(rows):
            write_image(base / "images" / f"{image}.jpg", n)
    return root


def cub200(root: Path, image_labels: Sequence[int] = (1, 1, 2, 2, 101, 101, 200, 200)) -> Path:
    """One image per entry of ``image_labels`` (1-based classes; by default two in each of
    classes 1, 2, 101 and 200), alternately in the test and the train split."""
    base = root / "CUB_200_2011"
    base.mkdir(parents=True)
    (base / "classes.txt").write_text("".join(f"{c} {c:03d}.Bird_{c}\n" for c in range(1, 201)))
    images, labels, split = [], [], []
    for n, label in enumerate(image_labels, start=1):
        path = f"{label:03d}.Bird_{label}/Bird_{label}_{n}.jpg"
        write_image(base / "images" / path, n)
        images.append(f"{n} {path}")
        labels.append(f"{n} {label}")
        split.append(f"{n} {n % 2}")
    (base / "images.txt").write_text("\n".join(images) + "\n")
    (base / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (base / "train_test_split.txt").write_text("\n".join(split) + "\n")
    return root


def stanford_online_products(root: Path) -> Path:
    base = root / "Stanford_Online_Products"
    header = "image_id class_id super_class_id path\n"
    train = [
        (1, 1, 1, "bicycle_final/111085122871_0.JPG"),
        (2, 1, 1, "bicycle_final/111085122871_1.JPG"),
        (3, 2, 2, "cabinet_final/1112_0.JPG"),
    ]
    test = [(4, 11319, 1, "bicycle_final/2222_0.JPG"), (5, 22634, 12, "toaster_final/3333_0.JPG")]
    for name, rows in (("Ebay_train.txt", train), ("Ebay_test.txt", test)):
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text(header + "".join(f"{a} {b} {c} {d}\n" for a, b, c, d in rows))
        for image_id, _, _, path in rows:
            write_image(base / path, image_id)
    return root
