"""``assembled-lightning export`` from the command line: a pretrained folder to ONNX (FP32 and
int8 calibrated on a DataModule YAML), with its sidecar; bad command lines fail with a message
that says what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_models import randomise_batch_norm

from assembled_lightning.cli import main
from assembled_lightning.models import create_model
from assembled_lightning.weights import save_pretrained

pytest.importorskip("onnxruntime", reason="needs the [deploy] extra")
CLASSES = ["disc", "square", "triangle", "cross"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = randomise_batch_norm(create_model("resnet18", num_classes=4, base_width=8))
    meta = {"preprocessing_type": "imagenet_32a", "categories": CLASSES}  # 33 → 32
    return save_pretrained(
        model, tmp_path_factory.mktemp("w") / "r18", architecture="resnet18", meta=meta
    )


def data_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "data.yaml"
    path.write_text(
        "class_path: SyntheticShapesDataModule\n"
        "init_args: {val_size: 96, batch_size: 16, image_size: 32}\n"
    )
    return path


def test_fp32_onnx_with_its_sidecar_in_the_working_folder(
    folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--model", "resnet18", "--weights", str(folder)]) == 0
    printed = capsys.readouterr().out
    assert "wrote resnet18.onnx" in printed and "max |diff|" in printed
    sidecar = json.loads((tmp_path / "resnet18.json").read_text())
    assert sidecar["categories"] == CLASSES
    assert sidecar["input"]["shape"] == ["batch", 3, 32, 32]
    assert (sidecar["preprocessing"]["resize"], sidecar["preprocessing"]["crop"]) == (33, 32)
    assert sidecar["parity"]["passed"] and sidecar["weights"] == str(folder)


def test_int8_calibrated_on_a_datamodule_yaml(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r18.int8.onnx"
    arguments = ["export", "--model", "resnet18", "--weights", str(folder), "--out", str(out)]
    arguments += ["--int8", "--data", str(data_yaml(tmp_path)), "--calibration-batches", "2"]
    assert main([*arguments, "--held-out-batches", "3"]) == 0
    assert "top-1 agreement" in capsys.readouterr().out
    quantization = json.loads(out.with_suffix(".json").read_text())["quantization"]
    assert quantization["backend"] == "onnxruntime" and quantization["calibration_images"] == 32
    assert quantization["agreement_with_fp32"]["images"] == 48


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--int8"], "--int8 calibrates on images: give --data"),
        (["--out", "model.pt2"], r"ends in \.onnx"),
        (["--format", "exported-program", "--out", "nowhere/m.pt2"], "does not exist"),
        (["--normalization", "torchvision"], "--normalization goes with --eval-type"),
        (["--eval-type", "imagnet"], "unknown preprocessing type .imagnet."),
    ],
)
def test_bad_command_lines_say_what_to_do(
    folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--model", "resnet18", "--weights", str(folder), *arguments]) == 2
    assert pytest.importorskip("re").search(message, capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_a_mistyped_model_lists_the_registered_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--model", "assemble_resnet5"]) == 2
    assert "registered models: assemble_resnet152, assemble_resnet50" in capsys.readouterr().err
    assert main(["export"]) == 2
    assert "--model is required" in capsys.readouterr().err


def test_a_fit_checkpoint_exports_with_its_own_architecture_and_preprocessing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "run"
    args = ["fit", "--config", "quickstart", "--trainer.max_epochs=1"]
    args += ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    args += [f"--trainer.default_root_dir={root}", f"--trainer.logger.init_args.save_dir={root}"]
    assert main([*args, "--data.init_args.train_size=64", "--data.init_args.val_size=32"]) == 0
    checkpoint = next(root.rglob("last.ckpt"))
    out = tmp_path / "quickstart.pt2"
    arguments = ["export", "--weights", str(checkpoint), "--format", "exported-program"]
    assert main([*arguments, "--out", str(out)]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["model"] == "assemble_resnet50"  # from the checkpoint: no --model given
    assert sidecar["input"]["shape"] == ["batch", 3, 32, 32]  # the quickstart's 32-px shapes
    prep = sidecar["preprocessing"]
    assert (prep["resize"], prep["crop"], prep["normalization"]) == (32, 32, "original")
    program = torch.export.load(out).module()
    assert program(torch.zeros(2, 3, 32, 32)).shape == (2, 4)
    assert sidecar["categories"] == CLASSES  # the quickstart's shapes, kept by the checkpoint
