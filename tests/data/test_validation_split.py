"""The validation split carved from the training split (``val_fraction``): stratified counts by
hand, disjoint from training and test, the same on every process and run, and wired so that
``validate`` sees the held-out images and ``test`` the test split."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from fake_layouts import TINY_OPTIONS, write_image

from assembled_lightning.data import ImageFolderDataModule, Sample
from assembled_lightning.data.validation_split import carve_validation

# class sizes 1, 2, 3, 10, 25 at fraction 0.2: round(0.2·n) held out, at least 1 where n ≥ 2,
# never a whole class → 0, 1, 1, 2, 5 by hand
CLASS_SIZES = (1, 2, 3, 10, 25)
HELD_OUT_BY_HAND = (0, 1, 1, 2, 5)


def samples_of(sizes: tuple[int, ...]) -> list[Sample]:
    return [
        Sample(Path(f"c{label}/{i}.jpg"), label, f"c{label}/{i:03d}.jpg")
        for label, size in enumerate(sizes)
        for i in range(size)
    ]


def count_by_label(samples: list[Sample]) -> list[int]:
    return [sum(s.label == label for s in samples) for label in range(len(CLASS_SIZES))]


def test_held_out_counts_per_class_match_the_hand_computation() -> None:
    samples = samples_of(CLASS_SIZES)
    training, validation = carve_validation(samples, 0.2, seed=0)
    assert tuple(count_by_label(validation)) == HELD_OUT_BY_HAND
    trained = [n - h for n, h in zip(CLASS_SIZES, HELD_OUT_BY_HAND, strict=True)]
    assert count_by_label(training) == trained
    ids = [s.sample_id for s in training + validation]
    assert sorted(ids) == sorted(s.sample_id for s in samples)  # a partition
    assert len(set(ids)) == len(samples)
    # both parts keep the input order
    assert [s.sample_id for s in training] == [s.sample_id for s in samples if s in training]
    assert [s.sample_id for s in validation] == [s.sample_id for s in samples if s in validation]


def test_split_ignores_the_global_seed_and_the_listing_order() -> None:
    samples = samples_of(CLASS_SIZES)
    torch.manual_seed(1)
    first = {s.sample_id for s in carve_validation(samples, 0.2, seed=3)[1]}
    torch.manual_seed(2)
    shuffled = samples[:]
    random.Random(0).shuffle(shuffled)  # another file-system listing order
    second = {s.sample_id for s in carve_validation(shuffled, 0.2, seed=3)[1]}
    assert first == second
    other_seed = {s.sample_id for s in carve_validation(samples, 0.2, seed=4)[1]}
    assert other_seed != first  # the seed does choose the images


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_fraction_outside_the_open_interval_is_rejected(fraction: float) -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        carve_validation(samples_of(CLASS_SIZES), fraction)


def image_folder(root: Path) -> Path:
    """train/: classes of 2, 5 and 10 images; val/: 2 images per class (the test split here)."""
    for c, size in enumerate((2, 5, 10)):
        for i in range(size):
            write_image(root / "train" / f"class{c}" / f"{i}.jpg", 100 * c + i)
        for i in range(2):
            write_image(root / "val" / f"class{c}" / f"t{i}.jpg", 1000 + 100 * c + i)
    return root


def loader_ids(loader: torch.utils.data.DataLoader) -> list[str]:
    return [sample_id for batch in loader for sample_id in batch["sample_id"]]


def test_datamodule_validates_on_held_out_training_images_and_tests_on_the_test_split(
    tmp_path: Path,
) -> None:
    root = image_folder(tmp_path)
    data = ImageFolderDataModule(root, val_fraction=0.2, **TINY_OPTIONS)
    data.setup("fit")
    train = {s.sample_id for s in data.datasets["train"].samples}
    val = loader_ids(data.val_dataloader())
    test = loader_ids(data.test_dataloader())
    # 0.2 of 2, 5, 10 → 1, 1, 2 held out (at least one per class)
    assert len(val) == 4 and len(train) == 17 - 4
    assert not train & set(val)
    assert all(sample_id.startswith("train/") for sample_id in val)
    assert sorted(test) == sorted(f"val/class{c}/t{i}.jpg" for c in range(3) for i in range(2))
    # the schedules count the training part only: int(1 epoch · 13 / batch 2) = 6 steps
    assert data.optimizer_steps(1.0) == 13 // TINY_OPTIONS["batch_size"]  # no trainer: 1 device
    # a separate `validate` / `test` process holds out the very same images
    again = ImageFolderDataModule(root, val_fraction=0.2, **TINY_OPTIONS)
    assert loader_ids(again.val_dataloader()) == val


def test_without_a_fraction_validation_stays_on_the_evaluation_split(tmp_path: Path) -> None:
    root = image_folder(tmp_path)
    data = ImageFolderDataModule(root, **TINY_OPTIONS)
    data.setup("fit")
    assert len(data.datasets["train"]) == 17
    assert loader_ids(data.val_dataloader()) == loader_ids(data.test_dataloader())


def test_held_out_split_cannot_combine_with_streamed_shards(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="train_shards"):
        ImageFolderDataModule(tmp_path, val_fraction=0.1, train_shards=tmp_path)
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        ImageFolderDataModule(tmp_path, val_fraction=1.0)


def test_a_split_of_single_image_classes_says_nothing_can_be_held_out(tmp_path: Path) -> None:
    for c in range(3):
        write_image(tmp_path / "train" / f"class{c}" / "0.jpg", c)
        write_image(tmp_path / "val" / f"class{c}" / "0.jpg", 10 + c)
    data = ImageFolderDataModule(tmp_path, val_fraction=0.5, **TINY_OPTIONS)
    with pytest.raises(ValueError, match=r"holds out no image.*val_fraction: 0"):
        data.setup("fit")
