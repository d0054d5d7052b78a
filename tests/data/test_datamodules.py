"""Every DataModule on a fake copy of its data set's layout: sizes, classes, labels, splits,
batches, bad images and missing roots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fake_layouts
import pytest
import torch

from assembled_lightning.data.datamodules import (
    CUB200DataModule,
    FGVCAircraftDataModule,
    Flowers102DataModule,
    Food101DataModule,
    ImageDataModule,
    ImageFolderDataModule,
    ImageNetDataModule,
    OxfordIIITPetDataModule,
    StanfordCarsDataModule,
    StanfordOnlineProductsDataModule,
)

TINY = fake_layouts.TINY_OPTIONS


def labels_by_id(module: ImageDataModule, key: str) -> dict[str, int]:
    module.setup("fit")
    return {s.sample_id: s.label for s in module.datasets[key].samples}


def first_batch(module: ImageDataModule, train: bool = True) -> dict[str, Any]:
    loader = module.train_dataloader() if train else module.val_dataloader()
    return module.on_after_batch_transfer(next(iter(loader)), 0)


@pytest.mark.parametrize("val", ["folders", "synsets", "kaggle"])
def test_imagenet_layouts(tmp_path: Path, val: str) -> None:
    root = fake_layouts.imagenet(tmp_path, val)
    labels_file = {"synsets": root / "val_labels.txt", "kaggle": root / "LOC_val_solution.csv"}
    module = ImageNetDataModule(root, val_labels=labels_file.get(val), num_classes=3, **TINY)
    val_labels = labels_by_id(module, "eval")
    expected_dir = "n01443537/" if val == "folders" else ""
    assert (
        len(val_labels) == 6 and val_labels[f"val/{expected_dir}ILSVRC2012_val_00000002.JPEG"] == 1
    )
    assert labels_by_id(module, "train")["train/n01484850/n01484850_1.JPEG"] == 2
    batch = first_batch(module)
    assert batch["image"].shape == (2, 3, 16, 16) and batch["target"].dtype == torch.long
    assert first_batch(module, train=False)["image"].shape == (2, 3, 16, 16)


def test_imagenet_flat_val_without_labels_explains_the_layout(tmp_path: Path) -> None:
    root = fake_layouts.imagenet(tmp_path, "synsets")
    with pytest.raises(FileNotFoundError, match="val_labels"):
        ImageNetDataModule(root, num_classes=3, **TINY).setup("validate")


def test_imagenet_class_count_is_checked(tmp_path: Path) -> None:
    root = fake_layouts.imagenet(tmp_path)
    with pytest.raises(ValueError, match="expects 1000 classes"):
        ImageNetDataModule(root, **TINY).setup("fit")


FINE_GRAINED = [
    # module, layout builder, classes, (train size, eval size), (an eval sample id, its label)
    (Food101DataModule, fake_layouts.food101, 101, (4, 2), ("images/baby_back_ribs/1002.jpg", 1)),
    (StanfordCarsDataModule, fake_layouts.stanford_cars, 196, (3, 2), ("cars_test/00001.jpg", 195)),
    (Flowers102DataModule, fake_layouts.flowers102, 102, (4, 4), ("jpg/image_00005.jpg", 49)),
    (FGVCAircraftDataModule, fake_layouts.fgvc_aircraft, 100, (4, 2), ("images/0062765.jpg", 5)),
    (
        OxfordIIITPetDataModule,
        fake_layouts.oxford_pets,
        37,
        (4, 2),
        ("images/yorkshire_terrier_2.jpg", 36),
    ),
]


@pytest.mark.parametrize(("module_class", "build", "classes", "sizes", "probe"), FINE_GRAINED)
def test_fine_grained_sets(
    tmp_path: Path, module_class: type, build: Any, classes: int, sizes: tuple, probe: tuple
) -> None:
    module = module_class(build(tmp_path), **TINY)
    assert module.num_classes == classes
    train, evaluation = labels_by_id(module, "train"), labels_by_id(module, "eval")
    assert (len(train), len(evaluation)) == sizes
    assert evaluation[probe[0]] == probe[1]
    assert not set(train) & set(evaluation)
    batch = first_batch(module)
    assert batch["image"].shape == (2, 3, 16, 16) and len(batch["sample_id"]) == 2


def test_flowers_uses_the_papers_train_plus_val_split(tmp_path: Path) -> None:
    module = Flowers102DataModule(fake_layouts.flowers102(tmp_path), **TINY)
    assert sorted(labels_by_id(module, "train")) == [f"jpg/image_0000{i}.jpg" for i in (1, 2, 3, 4)]
    assert labels_by_id(module, "train")["jpg/image_00004.jpg"] == 101


def test_cub_zero_shot_split_uses_disjoint_class_halves(tmp_path: Path) -> None:
    root = fake_layouts.cub200(tmp_path)
    zero_shot = CUB200DataModule(root, zero_shot=True, **TINY)
    train, test = labels_by_id(zero_shot, "train"), labels_by_id(zero_shot, "eval")
    assert sorted(set(train.values())) == [0, 1] and sorted(set(test.values())) == [0, 99]
    assert zero_shot.num_classes == 100 and len(train) == 4 and len(test) == 4
    classification = CUB200DataModule(root, **TINY)
    assert classification.num_classes == 200
    assert len(labels_by_id(classification, "train")) == 4
    assert labels_by_id(classification, "eval")["images/200.Bird_200/Bird_200_8.jpg"] == 199


def test_stanford_online_products_zero_shot_split(tmp_path: Path) -> None:
    module = StanfordOnlineProductsDataModule(
        fake_layouts.stanford_online_products(tmp_path), **TINY
    )
    assert labels_by_id(module, "train") == {
        "bicycle_final/111085122871_0.JPG": 0,
        "bicycle_final/111085122871_1.JPG": 0,
        "cabinet_final/1112_0.JPG": 1,
    }
    assert labels_by_id(module, "eval") == {
        "bicycle_final/2222_0.JPG": 0,
        "toaster_final/3333_0.JPG": 1,
    }


def test_image_folder_maps_val_classes_to_train_indices(tmp_path: Path) -> None:
    for split, classes in (("train", ["cat", "dog", "eel"]), ("val", ["dog"])):
        for c in classes:
            fake_layouts.write_image(tmp_path / split / c / "a.png", 1)
    module = ImageFolderDataModule(tmp_path, **TINY)
    assert module.num_classes == 3
    assert labels_by_id(module, "eval") == {"val/dog/a.png": 1}


@pytest.mark.parametrize(
    ("module_class", "message"),
    [
        (Food101DataModule, "food-101/images/<class>"),
        (StanfordCarsDataModule, "cars_meta.mat"),
        (ImageNetDataModule, "image-net.org"),
        (CUB200DataModule, "image_class_labels.txt"),
    ],
)
def test_missing_root_says_where_data_comes_from(
    tmp_path: Path, module_class: type, message: str
) -> None:
    with pytest.raises(FileNotFoundError, match=message):
        module_class(tmp_path / "nowhere", **TINY).setup("fit")


def test_bad_images_raise_or_are_skipped_and_counted(tmp_path: Path) -> None:
    root = fake_layouts.imagenet(tmp_path)
    bad = root / "train" / "n01440764" / "n01440764_0.JPEG"
    bad.write_bytes(bad.read_bytes()[:100])
    strict = ImageNetDataModule(root, num_classes=3, **{**TINY, "batch_size": 6})
    with pytest.raises(ValueError, match=r"n01440764_0\.JPEG"):
        first_batch(strict)
    lenient = ImageNetDataModule(
        root, num_classes=3, skip_bad_images=True, max_bad_fraction=0.5, **{**TINY, "batch_size": 6}
    )
    with pytest.warns(RuntimeWarning, match="skipping bad image"):
        batch = first_batch(lenient)
    # replaced by the next good training image: the batch stays full
    assert batch["image"].shape[0] == 6 and batch["num_skipped"] == 1
    assert batch["skipped_files"] == [str(bad)] and lenient.skipped_images == 1


def test_bad_settings_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        ImageFolderDataModule(tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="autoaugment"):
        ImageFolderDataModule(tmp_path, autoaugment="rand")
    with pytest.raises(ValueError, match="preprocessing type"):
        ImageFolderDataModule(tmp_path, eval_type="inception")


@pytest.mark.parametrize("autoaugment", ["none", "imagenet"])
def test_augment_on_device_moves_crop_flip_and_autoaugment_after_transfer(
    tmp_path: Path, autoaugment: str
) -> None:
    root = fake_layouts.imagenet(tmp_path)
    module = ImageNetDataModule(
        root, num_classes=3, augment_on_device=True, autoaugment=autoaugment, **TINY
    )
    raw = next(iter(module.train_dataloader()))
    assert raw["image"].dtype == torch.uint8 and raw["image"].shape == (2, 3, 18, 18)
    batch = module.on_after_batch_transfer(raw, 0)
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (2, 3, 16, 16)
    assert batch["image"].min() >= -124 and batch["image"].max() <= 152  # mean-subtracted 0..255
    evaluation = module.on_after_batch_transfer(next(iter(module.val_dataloader())), 0)
    assert evaluation["image"].shape == (2, 3, 16, 16)  # eval batches pass through unchanged


def test_downloads_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    calls: list[tuple[Path, bool]] = []
    monkeypatch.setattr(
        torchvision.datasets, "Food101", lambda root, download: calls.append((root, download))
    )
    Food101DataModule(tmp_path, **TINY).prepare_data()
    assert calls == []
    Food101DataModule(tmp_path, download=True, **TINY).prepare_data()
    assert calls == [(tmp_path, True)]
    with pytest.raises(ValueError, match="cannot download"):
        ImageNetDataModule(tmp_path, download=True, **TINY).prepare_data()
