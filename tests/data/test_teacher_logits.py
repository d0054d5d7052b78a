"""Teacher logits: extraction → store → batches (shuffled, 2 workers), resume, missing ids."""

from __future__ import annotations

import json
from pathlib import Path

import fake_layouts
import pytest
import torch

from assembled_lightning import create_model
from assembled_lightning.cli import main
from assembled_lightning.data import decode_image
from assembled_lightning.data.datamodules import ImageNetDataModule
from assembled_lightning.data.teacher_logits import TeacherLogitStore, extract_teacher_logits
from assembled_lightning.weights import save_pretrained

TINY = {**fake_layouts.TINY_OPTIONS, "num_classes": 3}


@pytest.fixture
def teacher() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=3, base_width=8, zero_gamma=False)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


class CountingTeacher(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.images_seen = model, 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.images_seen += images.shape[0]
        return self.model(images)


def test_batches_carry_each_samples_own_teacher_logits(
    tmp_path: Path, teacher: torch.nn.Module
) -> None:
    root = fake_layouts.imagenet(tmp_path / "data")
    data = ImageNetDataModule(root, **TINY)
    store = extract_teacher_logits(
        teacher,
        data.eval_dataset(),
        tmp_path / "store",
        teacher_name="t",
        transform_name="e",
        chunk_size=4,
    )
    loaded = ImageNetDataModule(root, teacher_logits=store, **{**TINY, "num_workers": 2})
    seen = {}
    for batch in loaded.train_dataloader():
        for sample_id, logits in zip(batch["sample_id"], batch["teacher_logits"], strict=True):
            seen[sample_id] = logits
    assert len(seen) == 6
    with torch.no_grad():
        for sample_id, logits in seen.items():
            image = data.eval_transform(decode_image(root / sample_id))
            assert torch.allclose(logits, teacher(image[None])[0], rtol=1e-5, atol=1e-4), sample_id
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["count"] == 6 and manifest["num_classes"] == 3 and manifest["sha256"]


def test_interrupted_extraction_resumes_without_recomputing(
    tmp_path: Path, teacher: torch.nn.Module
) -> None:
    dataset = ImageNetDataModule(fake_layouts.imagenet(tmp_path / "data"), **TINY).eval_dataset()
    counting = CountingTeacher(teacher)

    def stop_after_first_chunk(chunk: int) -> None:
        raise KeyboardInterrupt

    options = {"teacher_name": "t", "transform_name": "e", "chunk_size": 4}
    with pytest.raises(KeyboardInterrupt):
        extract_teacher_logits(
            counting, dataset, tmp_path / "store", **options, on_chunk_done=stop_after_first_chunk
        )
    with pytest.raises(ValueError, match="incomplete"):
        TeacherLogitStore(tmp_path / "store")
    first_run = counting.images_seen
    extract_teacher_logits(counting, dataset, tmp_path / "store", **options)
    assert counting.images_seen - first_run == 2  # only the unfinished chunk (samples 5-6)
    store = TeacherLogitStore(tmp_path / "store", verify=True)
    uninterrupted = extract_teacher_logits(teacher, dataset, tmp_path / "again", **options)
    again = TeacherLogitStore(uninterrupted)
    for sample in dataset.samples:
        assert torch.equal(store[sample.sample_id], again[sample.sample_id])


def test_missing_ids_and_wrong_widths_are_errors(tmp_path: Path, teacher: torch.nn.Module) -> None:
    root = fake_layouts.imagenet(tmp_path / "data")
    dataset = ImageNetDataModule(root, **TINY).eval_dataset()
    dataset.samples = dataset.samples[:4]
    store = extract_teacher_logits(
        teacher, dataset, tmp_path / "store", teacher_name="t", transform_name="e"
    )
    with pytest.raises(KeyError, match="2 training sample"):
        ImageNetDataModule(root, teacher_logits=store, **TINY).setup("fit")
    with pytest.raises(FileNotFoundError, match="extract-logits"):
        ImageNetDataModule(root, teacher_logits=tmp_path / "nowhere", **TINY)


def test_extract_logits_command(tmp_path: Path, teacher: torch.nn.Module) -> None:
    root = fake_layouts.imagenet(tmp_path / "data")
    config = tmp_path / "data.yaml"
    config.write_text(
        "class_path: assembled_lightning.data.ImageNetDataModule\n"
        f"init_args:\n  root: {root}\n  num_classes: 3\n  eval_type: imagenet_16\n"
    )
    folder = save_pretrained(teacher, tmp_path / "teacher", architecture="resnet18")
    out = tmp_path / "store"
    code = main(
        [
            "extract-logits",
            "--teacher",
            str(folder),
            "--data",
            str(config),
            "--out",
            str(out),
            "--batch-size",
            "4",
        ]
    )
    assert code == 0
    store = TeacherLogitStore(out)
    assert len(store) == 6 and store.num_classes == 3
    assert "imagenet_16/original" in store.manifest["transform"]


def test_logits_are_found_by_sample_id_in_a_store_of_another_order(
    tmp_path: Path, teacher: torch.nn.Module
) -> None:
    """A store written in another order than the training set, from a superset of it (the
    training images reversed, the validation images in between): every training batch still
    carries teacher(its own image) — a lookup by position would hand out another image's row."""
    root = fake_layouts.imagenet(tmp_path / "data")
    data = ImageNetDataModule(root, **TINY)
    train_samples = data.eval_dataset().samples
    val_samples = data.eval_dataset(split=data.eval_split).samples
    dataset = data.eval_dataset()
    dataset.samples = [
        sample for pair in zip(reversed(train_samples), val_samples, strict=True) for sample in pair
    ]
    store = extract_teacher_logits(
        teacher, dataset, tmp_path / "store", teacher_name="t", transform_name="e", chunk_size=5
    )
    train_ids = [sample.sample_id for sample in train_samples]
    rows = json.loads((store / "ids.json").read_text())
    assert len(rows) == 12 and [rows.index(i) for i in train_ids] == [10, 8, 6, 4, 2, 0]

    def direct(sample_id: str) -> torch.Tensor:
        with torch.no_grad():
            return teacher(data.eval_transform(decode_image(root / sample_id))[None])[0]

    loaded = ImageNetDataModule(root, teacher_logits=store, **TINY)
    seen = {}
    for batch in loaded.train_dataloader():
        for sample_id, logits in zip(batch["sample_id"], batch["teacher_logits"], strict=True):
            seen[sample_id] = logits
    assert sorted(seen) == sorted(train_ids)
    for sample_id, logits in seen.items():
        assert torch.allclose(logits, direct(sample_id), rtol=1e-5, atol=1e-4), sample_id
    # The rows differ from image to image, so a wrong row could not pass by chance.
    assert min((seen[a] - seen[b]).abs().max().item() for a in seen for b in seen if a != b) > 1e-3
    reader = TeacherLogitStore(store)
    for sample in val_samples:  # the ids outside the training set are right too
        assert torch.allclose(reader[sample.sample_id], direct(sample.sample_id), atol=1e-4)
