"""UnlabelledImageFolderDataModule: every image under the root (recursively, sorted, ids relative
to the root, other files left out), nothing outside it, label-free batches the task predicts on,
and errors that say what to do."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from assembled_lightning.data import UnlabelledImageFolderDataModule
from assembled_lightning.tasks import ClassificationTask

TINY = {"base_width": 8, "block_counts": [1, 1, 1, 1]}


def write_png(path: Path, value: int, mode: str = "RGB") -> None:
    """A uniform 40×36 image of grey level ``value`` (opaque), PNG whatever the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = value if mode == "L" else (value, value, value, 255)[: len(mode)]
    Image.new(mode, (40, 36), colour).save(path, format="PNG")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    write_png(root / "b.png", 10)
    write_png(root / "a" / "z.PNG", 20, mode="L")
    write_png(root / "a" / "y" / "x.png", 30, mode="RGBA")
    write_png(root / "c.jpeg.bak", 40)  # not an image suffix
    (root / "readme.txt").write_text("hello")
    return root


def test_images_are_found_recursively_sorted_with_relative_ids(folder: Path) -> None:
    data = UnlabelledImageFolderDataModule(folder, batch_size=2, eval_type="imagenet_32")
    data.setup("predict")
    batches = list(data.predict_dataloader())
    ids = [sample_id for batch in batches for sample_id in batch["sample_id"]]
    # the order of Python's string sort of the POSIX relative paths
    assert ids == ["a/y/x.png", "a/z.PNG", "b.png"]
    images = torch.cat([batch["image"] for batch in batches])
    assert images.shape == (3, 3, 32, 32)
    # uniform grey images: the value minus the original's per-channel means (ORIGINAL.md §4)
    means = torch.tensor([123.68, 116.78, 103.94]).view(3, 1, 1)
    for image, value in zip(images, (30, 20, 10), strict=True):
        torch.testing.assert_close(image, torch.full((3, 32, 32), float(value)) - means)
    assert torch.cat([batch["target"] for batch in batches]).tolist() == [-1, -1, -1]


def test_label_free_batches_go_through_predict_step(folder: Path) -> None:
    data = UnlabelledImageFolderDataModule(folder, batch_size=3, eval_type="imagenet_32")
    batch = next(iter(data.predict_dataloader()))
    task = ClassificationTask("resnet18", num_classes=4, model_overrides=TINY).eval()
    with torch.no_grad():
        out = task.predict_step(batch, 0)
        logits = task.model(batch["image"])
    assert out["sample_id"] == ["a/y/x.png", "a/z.PNG", "b.png"]
    expected = np.exp(logits.double().numpy())
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, rtol=0, atol=1e-6)


def test_a_link_out_of_the_folder_is_refused(folder: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    write_png(outside, 50)
    os.symlink(folder / "b.png", folder / "inside_link.png")  # inside: kept
    data = UnlabelledImageFolderDataModule(folder, eval_type="imagenet_32")
    data.setup("predict")
    assert [s.sample_id for s in data.dataset.samples][-1] == "inside_link.png"
    os.symlink(outside, folder / "a" / "escape.png")
    with pytest.raises(ValueError, match=r"escape\.png is a symbolic link .* outside"):
        UnlabelledImageFolderDataModule(folder, eval_type="imagenet_32").setup("predict")
    (folder / "a" / "escape.png").unlink()
    os.symlink(tmp_path, folder / "linked_folder")
    with pytest.raises(ValueError, match="linked_folder is a symbolic link"):
        UnlabelledImageFolderDataModule(folder, eval_type="imagenet_32").setup("predict")


def test_missing_or_empty_folders_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"does not exist: pass the folder .*--data\.root"):
        UnlabelledImageFolderDataModule(tmp_path / "nope")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "notes.txt").write_text("x")
    data = UnlabelledImageFolderDataModule(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"no images under .*put the images"):
        data.setup("predict")
