"""The JSON sidecar: the numbers a runtime needs to feed the exported graph, from the weights
(registered entry, pretrained folder, ``fit`` checkpoint), checked against the original's eval
preprocessing (ORIGINAL.md §4) and read back strictly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from assembled_lightning.export import Preprocessing, read_preprocessing, weights_preprocessing
from assembled_lightning.export.preprocessing import (
    Sidecar,
    checkpoint_preprocessing,
    export_categories,
    write_sidecar,
)
from assembled_lightning.models import create_model
from assembled_lightning.weights import save_pretrained


def test_released_weights_name_the_original_eval_sizes_and_means() -> None:
    # Assemble-ResNet-50: shorter side int(256 / 0.875) = 292, crop 256; -152: 257 → 256
    r50 = weights_preprocessing("assemble_resnet50", "assemble_resnet50.tf_in1k")
    assert (r50.resize, r50.crop, r50.interpolation) == (292, 256, "tf_legacy_bilinear")
    r152 = weights_preprocessing("assemble_resnet152", "DEFAULT")
    assert (r152.resize, r152.crop) == (257, 256)
    assert r50.mean == (123.68, 116.78, 103.94) and r50.std == (1.0, 1.0, 1.0)
    assert r50.scale == 1.0


def test_no_weights_give_the_paper_eval_crop_of_the_row() -> None:
    assert (weights_preprocessing("resnet50", None).resize, 224) == (256, 224)
    assert weights_preprocessing("resnet50", None).crop == 224
    bl = weights_preprocessing("resnet50d_sk_bl", None)  # BigLittleNet rows: 256 (Table 7)
    assert (bl.resize, bl.crop) == (292, 256)


def test_the_sidecar_formula_reproduces_the_model_input() -> None:
    """A runtime applying ``(rgb * scale - mean) / std`` after resize + crop feeds the graph
    what the package's eval transform feeds the model."""
    prep = Preprocessing(40, 32, "bilinear_antialias", "torchvision")
    side = json.loads(json.dumps(Sidecar("m", None, "onnx", prep, None, []).to_json()))
    numbers = side["preprocessing"]
    assert numbers["scale"] == pytest.approx(1 / 255)
    assert numbers["mean"] == [0.485, 0.456, 0.406] and numbers["std"] == [0.229, 0.224, 0.225]
    pixels = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)  # already resize/crop-sized
    by_hand = (pixels.numpy().astype(np.float64) * numbers["scale"]) - np.reshape(
        numbers["mean"], (3, 1, 1)
    )
    by_hand /= np.reshape(numbers["std"], (3, 1, 1))
    ours = Preprocessing(32, 32, "bilinear_antialias", "torchvision").transform()(pixels)
    np.testing.assert_allclose(ours.numpy(), by_hand, atol=1e-5)


def test_a_pretrained_folder_gives_its_preprocessing_and_class_names(tmp_path: Path) -> None:
    model = create_model("resnet18", num_classes=3, base_width=8)
    meta = {
        "preprocessing_type": "imagenet_224_256a",
        "normalization": "torchvision",
        "categories": ["cat", "dog", "owl"],
    }
    folder = save_pretrained(model, tmp_path / "w", architecture="resnet18", meta=meta)
    prep = weights_preprocessing("resnet18", folder)
    assert (prep.resize, prep.crop, prep.normalization) == (257, 256, "torchvision")
    assert export_categories("resnet18", folder, 3) == ["cat", "dog", "owl"]
    assert export_categories("resnet18", folder, 5) is None  # a new head has other classes


def test_a_fit_checkpoint_gives_its_datamodule_eval_preprocessing(tmp_path: Path) -> None:
    files = {
        "imagenet.ckpt": {"eval_type": "imagenet_224_256", "normalization": "torchvision"},
        "shapes.ckpt": {"image_size": 64},  # in-memory images of that side: no resize
    }
    for file, data in files.items():
        torch.save({"state_dict": {}, "datamodule_hyper_parameters": data}, tmp_path / file)
    imagenet = checkpoint_preprocessing(tmp_path / "imagenet.ckpt")
    assert (imagenet.resize, imagenet.crop, imagenet.normalization) == (292, 256, "torchvision")
    shapes = checkpoint_preprocessing(tmp_path / "shapes.ckpt")
    assert (shapes.resize, shapes.crop, shapes.normalization) == (64, 64, "original")


def test_a_written_sidecar_reads_back_and_bad_values_are_named(tmp_path: Path) -> None:
    prep = Preprocessing(292, 256)
    path = write_sidecar(
        Sidecar("m", "w", "onnx", prep, ["a"], ["batch", 3, 256, 256]), tmp_path / "m.onnx"
    )
    assert path == tmp_path / "m.json" and read_preprocessing(path) == prep
    content = json.loads(path.read_text())
    for field, value in (
        ("resize", "292"),
        ("interpolation", "bilinearr"),
        ("normalization", None),
    ):
        broken = json.loads(json.dumps(content))
        broken["preprocessing"][field] = value
        path.write_text(json.dumps(broken))
        with pytest.raises(ValueError, match=f"preprocessing.{field}"):
            read_preprocessing(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read the preprocessing sidecar"):
        read_preprocessing(path)
    with pytest.raises(ValueError, match="crop <= resize"):
        Preprocessing(224, 256)
