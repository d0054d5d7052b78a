"""RobustnessTask through the real CLI (``test --config <robustness recipe>``): the shipped
recipes run end to end on fake ImageNet-C / ImageNet-P / Food-101 layouts, and the reported
errors and CEs equal a by-hand evaluation of the same model on the same files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import fake_imagenet_c
import numpy as np
import pytest
import torch
from PIL import Image

from assembled_lightning import create_model
from assembled_lightning.cli import main
from assembled_lightning.data.transforms import ORIGINAL_MEAN_RGB
from assembled_lightning.weights import from_pretrained, save_pretrained

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import fake_layouts

ON_ONE_CPU = [
    "--trainer.logger=false",
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.enable_progress_bar=false",
]
# AlexNet's mean ImageNet-C errors (ROBUSTNESS.md §2.3), typed in independently of baselines.py
ALEXNET_MEAN = {"contrast": 0.853204, "gaussian_noise": 0.886428}


def thin_weights(folder: Path, num_classes: int) -> Path:
    model = create_model("assemble_resnet50", base_width=8, num_classes=num_classes)
    return save_pretrained(model, folder, architecture="assemble_resnet50")


def imagenet_c_args(root: Path, weights: Path, out: Path) -> list[str]:
    return [
        "test",
        "--config",
        "imagenet_c",
        *ON_ONE_CPU,
        f"--trainer.default_root_dir={out.parent}",
        f"--data.init_args.root={root}",
        "--data.init_args.corruptions=[contrast, gaussian_noise]",
        "--data.init_args.image_size=32",
        "--data.init_args.num_classes=3",
        "--data.init_args.batch_size=4",
        "--data.init_args.num_workers=0",
        "--data.init_args.pin_memory=false",
        f"--model.init_args.weights={weights}",
        f"--model.init_args.output_dir={out}",
    ]


@pytest.mark.parametrize("background_class", [False, True], ids=["1000-way", "1001-way"])
def test_imagenet_c_report_equals_a_by_hand_evaluation(
    tmp_path: Path, background_class: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    root = fake_imagenet_c.imagenet_c(tmp_path / "c", per_class=2)
    weights = thin_weights(tmp_path / "w", 3 + background_class)
    out = tmp_path / "report"
    assert main(imagenet_c_args(root, weights, out)) == 0
    report = json.loads((out / "robustness.json").read_text())
    assert (out / "robustness.csv").is_file()
    assert Image.open(out / "robustness.png").format == "PNG"
    assert "| contrast |" in capsys.readouterr().out

    model = from_pretrained(weights).eval()
    mean = torch.tensor(ORIGINAL_MEAN_RGB).view(1, 3, 1, 1)
    for corruption in ALEXNET_MEAN:
        errors = []
        for severity in range(1, 6):
            files = sorted((root / corruption / str(severity)).rglob("*.JPEG"))
            pixels = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
            x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() - mean
            with torch.no_grad():
                predicted = model(x)[:, int(background_class) :].argmax(-1)
            labels = torch.tensor([fake_imagenet_c.WNIDS.index(f.parent.name) for f in files])
            errors.append(float((predicted != labels).double().mean()))
            got = report["corruptions"][corruption]["errors"][str(severity)]
            assert got == pytest.approx(errors[-1], abs=1e-9)
        row = report["corruptions"][corruption]
        assert row["mean_error"] == pytest.approx(np.mean(errors), abs=1e-9)
        assert row["ce"] == pytest.approx(np.mean(errors) / ALEXNET_MEAN[corruption], abs=1e-9)
    assert report["summary"]["mce_15"] is None  # 2 of the 15: no mCE, said so
    assert any("15 benchmark corruptions" in note for note in report["notes"])
    assert report["summary"]["unnormalized_mce"] == pytest.approx(
        np.mean([report["corruptions"][c]["mean_error"] for c in ALEXNET_MEAN]), abs=1e-9
    )


def test_a_model_for_other_classes_is_refused(tmp_path: Path) -> None:
    root = fake_imagenet_c.imagenet_c(tmp_path / "c", ["contrast"])
    weights = thin_weights(tmp_path / "w", 10)
    with pytest.raises(ValueError, match="10 outputs but the data 3 classes"):
        main(imagenet_c_args(root, weights, tmp_path / "r"))


def test_food101_recipe_corrupts_on_the_fly(tmp_path: Path) -> None:
    root = fake_layouts.food101(tmp_path / "food")
    weights = thin_weights(tmp_path / "w", 101)
    out = tmp_path / "report"
    args = ["test", "--config", "food101_c", *ON_ONE_CPU, "--trainer.fast_dev_run=true"]
    args.append(f"--trainer.default_root_dir={tmp_path}")
    args += [
        f"--data.init_args.data.init_args.root={root}",
        "--data.init_args.data.init_args.batch_size=4",
        "--data.init_args.data.init_args.num_workers=0",
        "--data.init_args.data.init_args.pin_memory=false",
        "--data.init_args.data.init_args.eval_type=imagenet_32",
        f"--model.init_args.weights={weights}",
        f"--model.init_args.output_dir={out}",
    ]
    assert main(args) == 0
    report = json.loads((out / "robustness.json").read_text())
    assert report["summary"]["clean_error"] is not None  # the clean images come first
    assert "mce_15" not in report["summary"]  # no AlexNet baseline for Food-101


def write_frames(folder: Path, frames: int, seed: int) -> None:
    for t in range(frames):
        fake_imagenet_c.write_square_jpeg(folder / f"{t:02d}.png", 32, seed + t)


def test_imagenet_p_recipe_reads_frame_folders_and_videos(tmp_path: Path) -> None:
    root = tmp_path / "p"
    for p, perturbation in enumerate(("gaussian_noise", "rotate")):
        for k, wnid in enumerate(fake_imagenet_c.WNIDS):
            write_frames(root / perturbation / wnid / "ILSVRC2012_val_00000001", 4, 10 * p + k)
    av = pytest.importorskip("av")
    video = root / "rotate" / fake_imagenet_c.WNIDS[0] / "ILSVRC2012_val_00000002.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for t in range(4):
            pixels = np.full((32, 32, 3), 60 * t, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    out = tmp_path / "report"
    args = ["test", "--config", "imagenet_p", *ON_ONE_CPU, f"--trainer.default_root_dir={tmp_path}"]
    args += [
        f"--data.init_args.root={root}",
        "--data.init_args.perturbations=[gaussian_noise, rotate]",
        "--data.init_args.num_classes=3",
        "--data.init_args.num_workers=0",
        f"--model.init_args.weights={thin_weights(tmp_path / 'w', 3)}",
        f"--model.init_args.output_dir={out}",
    ]
    assert main(args) == 0
