"""The data commands (issue #10, item 10): a ``fit`` checkpoint is a teacher as it stands, and a
full disk or an unwritable output folder is a one-line error that names the path and keeps the
work already written."""

from __future__ import annotations

import json
from pathlib import Path

import fake_layouts
import lightning as L
import pytest
import torch

from assembled_lightning import create_model
from assembled_lightning.cli import main
from assembled_lightning.data import decode_image
from assembled_lightning.data.datamodules import ImageNetDataModule
from assembled_lightning.data.teacher_logits import TeacherLogitStore, extract_teacher_logits
from assembled_lightning.tasks import ClassificationTask

TINY = {**fake_layouts.TINY_OPTIONS, "num_classes": 3}


@pytest.fixture
def data_yaml(tmp_path: Path) -> Path:
    root = fake_layouts.imagenet(tmp_path / "data")
    config = tmp_path / "data.yaml"
    config.write_text(
        f"class_path: ImageNetDataModule\ninit_args:\n  root: {root}\n  num_classes: 3\n"
        "  eval_type: imagenet_16\n"
    )
    return config


@pytest.mark.filterwarnings("ignore:`isinstance.treespec, LeafSpec.` is deprecated")
def test_a_fit_checkpoint_is_a_teacher_with_its_own_architecture(
    tmp_path: Path, data_yaml: Path
) -> None:
    root = tmp_path / "data"
    task = ClassificationTask(
        "resnet18", num_classes=3, model_overrides={"base_width": 8}, ema_decay=0.5
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, ImageNetDataModule(root, **TINY))
    with torch.no_grad():  # the averaged weights, which the task evaluates with, differ
        for parameter in task.ema.module.parameters():
            parameter.mul_(1.5)
    checkpoint = tmp_path / "last.ckpt"
    trainer.save_checkpoint(checkpoint)
    out = tmp_path / "store"
    args = ["extract-logits", "--teacher", str(checkpoint), "--data", str(data_yaml)]
    assert main([*args, "--out", str(out)]) == 0
    store = TeacherLogitStore(out, verify=True)
    evaluation = ImageNetDataModule(root, **TINY).eval_transform
    task.eval()
    with torch.no_grad():
        for sample_id in ("train/n01440764/n01440764_0.JPEG", "train/n01484850/n01484850_1.JPEG"):
            expected = task(evaluation(decode_image(root / sample_id))[None])[0]
            assert torch.allclose(store[sample_id], expected, atol=1e-5), sample_id
    assert main([*args, "--out", str(tmp_path / "other"), "--num-classes", "7"]) == 2


def test_an_unwritable_output_folder_is_a_clear_error(
    tmp_path: Path, data_yaml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out = blocker / "store"
    args = ["--data", str(data_yaml), "--out", str(out)]
    assert main(["extract-logits", "--teacher", "resnet18", "--num-classes", "3", *args]) == 2
    error = capsys.readouterr().err
    assert str(out) in error and "--out" in error and "Traceback" not in error
    assert main(["make-shards", *args]) == 2
    error = capsys.readouterr().err
    assert str(out) in error and "--out" in error


def test_a_full_disk_keeps_the_finished_chunks(tmp_path: Path) -> None:
    root = fake_layouts.imagenet(tmp_path / "data")
    dataset = ImageNetDataModule(root, **TINY).eval_dataset()
    out = tmp_path / "store"
    teacher = create_model("resnet18", num_classes=3, base_width=8).eval()
    seen = []

    def fill_the_disk(chunk: int) -> None:  # the next manifest update hits a full disk
        (out / "manifest.tmp").symlink_to("/dev/full")

    options = {"teacher_name": "t", "transform_name": "e", "chunk_size": 4}
    with pytest.raises(OSError, match="No space left") as error:
        extract_teacher_logits(teacher, dataset, out, on_chunk_done=fill_the_disk, **options)
    assert error.value.filename == str(out / "manifest.json")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows_done"] == [[0, 4]] and manifest["sha256"] is None
    assert not (out / "manifest.tmp").exists()
    extract_teacher_logits(teacher, dataset, out, on_chunk_done=seen.append, **options)
    assert seen == [0]  # only rows 4-5 were left
    TeacherLogitStore(out, verify=True)


def test_a_full_disk_is_a_one_line_error_that_says_how_to_resume(
    tmp_path: Path, data_yaml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "store"
    args = ["extract-logits", "--teacher", "resnet18", "--num-classes", "3"]
    args += ["--data", str(data_yaml), "--out", str(out), "--chunk-size", "4"]
    out.mkdir()
    (out / "logits.npy").symlink_to("/dev/full")  # every write: "No space left on device"
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "No space left" in error and str(out / "logits.npy") in error
    assert "run the same command again" in error and "Traceback" not in error
    (out / "logits.npy").unlink()
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows_done"] == [[0, 6]]


@pytest.mark.filterwarnings("ignore:resnet50. the checkpoint cannot confirm")
def test_convert_tf_into_an_unwritable_folder_is_a_clear_error(
    reference_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    fixture = reference_dir / "tf" / "vanilla_r50_thin"
    args = ["convert-tf", str(fixture), "--model", "resnet50", "--out", str(blocker / "x")]
    assert main([*args, "--set", "stem_pool_padding=tf_same"]) == 2
    error = capsys.readouterr().err
    assert str(blocker / "x") in error and "--out" in error
