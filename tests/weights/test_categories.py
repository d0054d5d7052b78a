"""Class names in weights meta: ImageNet's are torchvision's (the original's 1001-way heads put
background first), a pretrained folder keeps its meta through save / read, converted TF weights
carry the names of their head, and names that do not fit a head are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torchvision.models import ResNet50_Weights

from assembled_lightning import create_model
from assembled_lightning.data import EvalTransform
from assembled_lightning.weights import WEIGHTS, WeightsError, from_pretrained, save_pretrained
from assembled_lightning.weights.categories import imagenet_categories, read_categories
from assembled_lightning.weights.convert_tf import convert_tf_checkpoint
from assembled_lightning.weights.meta import pretrained_meta, weights_categories
from assembled_lightning.weights.registry import transforms_from_meta

TORCHVISION_NAMES = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]  # torchvision's public list


def test_imagenet_names_are_torchvisions_with_background_first_for_1001() -> None:
    assert imagenet_categories(1000) == TORCHVISION_NAMES
    assert len(TORCHVISION_NAMES) == 1000
    names = imagenet_categories(1001)
    assert names[0] == "background" and names[1] == "tench" and names[1:] == TORCHVISION_NAMES
    with pytest.raises(ValueError, match="not 10"):
        imagenet_categories(10)


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_registered_weights_name_every_output(name: str) -> None:
    meta = WEIGHTS[name].meta
    assert meta["categories"] == TORCHVISION_NAMES and meta["num_classes"] == 1000
    assert weights_categories(WEIGHTS[name].model, name) == TORCHVISION_NAMES
    assert weights_categories(WEIGHTS[name].model, "DEFAULT") == TORCHVISION_NAMES


def test_a_saved_folder_keeps_its_meta(tmp_path: Path) -> None:
    model = create_model("resnet18", num_classes=3, base_width=8).eval()
    meta = {
        "label_offset": 1,
        "preprocessing_type": "imagenet_224_256",
        "normalization": "torchvision",
        "categories": ["background", "cat", "dog"],
    }
    folder = save_pretrained(model, tmp_path / "saved", architecture="resnet18", meta=meta)
    assert pretrained_meta(folder) == {"num_classes": 3, **meta}
    assert weights_categories("resnet18", str(folder)) == ["background", "cat", "dog"]
    transform = transforms_from_meta(pretrained_meta(folder))
    assert isinstance(transform, EvalTransform)
    assert (transform.resize, transform.crop) == (292, 256)  # int(256 / 0.875), ORIGINAL.md §4
    assert transform.normalize.normalization == "torchvision"
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(from_pretrained(folder).eval()(images), model(images))


def test_names_that_do_not_fit_the_head_are_refused(tmp_path: Path) -> None:
    model = create_model("resnet18", num_classes=3, base_width=8)
    with pytest.raises(ValueError, match="2 class names but the model has 3 outputs"):
        save_pretrained(model, tmp_path / "a", meta={"categories": ["cat", "dog"]})
    assert not (tmp_path / "a").exists()
    folder = save_pretrained(model, tmp_path / "b")
    config = json.loads((folder / "config.json").read_text())
    config["meta"]["categories"] = "/etc/hostname"  # a path in a downloaded file is never read
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="must be a list of strings"):
        pretrained_meta(folder)


def test_a_names_file_has_one_name_per_line(tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_bytes(b"tabby cat\r\ngolden retriever\r\n")
    assert read_categories(path) == ["tabby cat", "golden retriever"]
    path.write_text("a\n\nb\n")
    with pytest.raises(ValueError, match="non-empty single-line"):
        read_categories(str(path))
    with pytest.raises(FileNotFoundError, match="one class name per line"):
        read_categories(str(tmp_path / "missing.txt"))


@pytest.mark.parametrize("drop_background", [False, True], ids=["1001-way", "1000-way"])
def test_converted_tf_weights_name_their_head(
    reference_dir: Path, tmp_path: Path, drop_background: bool
) -> None:
    fixture = reference_dir / "tf" / "vanilla_r50_thin"
    convert_tf_checkpoint(
        fixture,
        "resnet50",
        tmp_path,
        drop_background=drop_background,
        overrides={"stem_pool_padding": "tf_same"},
        golden=fixture / "golden.npz",
    )
    meta = pretrained_meta(tmp_path)
    names = meta["categories"]
    assert len(names) == meta["num_classes"] == (1000 if drop_background else 1001)
    assert names[meta["label_offset"]] == "tench"  # ImageNet class 0 (n01440764)
    assert names[meta["label_offset"] :] == TORCHVISION_NAMES
