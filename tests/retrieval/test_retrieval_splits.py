"""The zero-shot splits, checked against the fake annotation files read here by hand: CUB
1–100 / 101–200, Cars-196 1–98 / 99–196 over both annotation files, SOP's own split; the
validation classes (the last 10 % of the training range) are never trained on; evaluation
items carry their index and training batches are P×K."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import fake_retrieval_layouts as fake
import pytest
from scipy.io import loadmat

from assembled_lightning.data.samples import Sample
from assembled_lightning.retrieval import (
    Cars196RetrievalDataModule,
    CUB200RetrievalDataModule,
    SOPRetrievalDataModule,
)

TINY = {"batch_size": 4, "images_per_class": 2, "num_workers": 0, "pin_memory": False}
TINY |= {"train_size": 32, "eval_type": "imagenet_32"}


def cub_classes(root: Path) -> dict[str, int]:
    """``images/<path>`` → class id, from images.txt and image_class_labels.txt."""
    base = root / "CUB_200_2011"
    paths = dict(line.split() for line in (base / "images.txt").read_text().splitlines())
    labels = dict(
        line.split() for line in (base / "image_class_labels.txt").read_text().split("\n") if line
    )
    return {f"images/{path}": int(labels[n]) for n, path in paths.items()}


def cars_classes(root: Path) -> dict[str, int]:
    """``cars_{train,test}/<file>`` → class id, from both annotation .mat files."""
    base = root / "stanford_cars"
    found = {}
    for folder, mat in (
        ("cars_train", "devkit/cars_train_annos.mat"),
        ("cars_test", "cars_test_annos_withlabels.mat"),
    ):
        for row in loadmat(base / mat, squeeze_me=True)["annotations"]:
            found[f"{folder}/{row['fname']}"] = int(row["class"])
    return found


def sop_classes(root: Path) -> dict[str, int]:
    base = root / "Stanford_Online_Products"
    found = {}
    for name in ("Ebay_train.txt", "Ebay_test.txt"):
        for line in (base / name).read_text().splitlines()[1:]:
            _, class_id, _, path = line.split()
            found[path] = int(class_id)
    return found


def original_classes(samples: list[Sample], truth: dict[str, int]) -> set[int]:
    return {truth[s.sample_id] for s in samples}


@pytest.mark.parametrize(
    ("module", "layout", "truth", "train", "val", "test"),
    [
        (CUB200RetrievalDataModule, fake.cub200, cub_classes, (1, 90), (91, 100), (101, 200)),
        (
            Cars196RetrievalDataModule,
            fake.stanford_cars,
            cars_classes,
            (1, 88),
            (89, 98),
            (99, 196),
        ),
    ],
    ids=["cub200", "cars196"],
)
def test_zero_shot_class_ranges(
    module: type,
    layout: object,
    truth: object,
    train: tuple[int, int],
    val: tuple[int, int],
    test: tuple[int, int],
    tmp_path: Path,
) -> None:
    root = layout(tmp_path)  # type: ignore[operator]
    classes = truth(root)  # type: ignore[operator]

    def in_range(lo: int, hi: int) -> set[str]:
        return {path for path, c in classes.items() if lo <= c <= hi}

    data = module(root, val_classes=0.1, **TINY)
    splits = data.retrieval_splits()
    for name, (lo, hi) in (("train", train), ("val", val), ("test", test)):
        assert {s.sample_id for s in splits[name]} == in_range(lo, hi), name
    # every image of the set is in exactly one split; labels renumbered from 0 per split
    assert sum(len(s) for s in splits.values()) == len(classes)
    assert {s.label for s in splits["test"]} == {
        classes[s.sample_id] - test[0] for s in splits["test"]
    }
    assert data.num_classes == train[1]  # the head's outputs: the trained classes only
    assert (
        max(s.label for s in splits["train"])
        < data.num_classes
        <= min(s.label for s in splits["val"])
    )
    # val_classes 0: the whole training range is trained on, as the original
    whole = module(root, val_classes=0.0, **TINY)
    assert {s.sample_id for s in whole.retrieval_splits()["train"]} == in_range(train[0], val[1])
    assert whole.num_classes == val[1]


def test_sop_split_and_its_held_out_class(tmp_path: Path) -> None:
    root = fake.stanford_online_products(tmp_path)
    classes = sop_classes(root)
    data = SOPRetrievalDataModule(root, val_classes=0.1, **TINY)
    splits = data.retrieval_splits()
    assert original_classes(splits["train"], classes) == set(fake.SOP_TRAIN_CLASSES[:-1])
    assert original_classes(splits["val"], classes) == {11318}  # 10 % of 10: the last one
    assert original_classes(splits["test"], classes) == set(fake.SOP_TEST_CLASSES)
    assert data.num_classes == 9 and data.recall_ks == (1, 10, 100, 1000)


def test_loaders_give_pk_batches_and_indexed_evaluation_items(tmp_path: Path) -> None:
    data = CUB200RetrievalDataModule(fake.cub200(tmp_path), val_classes=0.1, **TINY)
    data.setup("fit")
    train = list(data.train_dataloader())
    # 4 trained classes (1–4) × 3 images: 12 // 4 = 3 batches of 2 classes × 2 images
    assert len(train) == 3 and data.optimizer_steps(2) == 6
    for batch in train:
        assert sorted(Counter(batch["target"].tolist()).values()) == [2, 2]
        assert batch["image"].shape == (4, 3, 32, 32)
    val = list(data.val_dataloader())
    assert [i for b in val for i in b["index"].tolist()] == list(range(9))  # classes 92, 99, 100
    assert sorted({t for b in val for t in b["target"].tolist()}) == [91, 98, 99]
    test = list(data.test_dataloader())
    assert sum(len(b["index"]) for b in test) == 15  # classes 101, 102, 150, 199, 200


def test_bad_options_are_explained(tmp_path: Path) -> None:
    root = fake.cub200(tmp_path)
    with pytest.raises(ValueError, match="multiple of images_per_class"):
        CUB200RetrievalDataModule(root, batch_size=6, images_per_class=4)
    with pytest.raises(ValueError, match="val_classes must be a fraction"):
        CUB200RetrievalDataModule(root, val_classes=5)
    with pytest.raises(ValueError, match="holds out whole classes"):
        CUB200RetrievalDataModule(root, val_fraction=0.1)
