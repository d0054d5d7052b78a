"""export_model / quantize_model: what a caller gets on success and on failure — the parity
check refuses a wrong file and leaves nothing behind, bad paths and a missing extra say what to
do, calibration images are disjoint from the ones int8 is judged on."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_model

from assembled_lightning.data.synthetic import SyntheticShapesDataModule
from assembled_lightning.export import (
    ExportError,
    Preprocessing,
    calibration_images,
    export_model,
    onnx_runner,
    pipeline,
)
from assembled_lightning.export.parity import measure_agreement, measure_parity

PREP = Preprocessing(64, 64)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return tiny_model("resnet18")


def test_an_exported_program_runs_any_batch_and_records_its_parity(
    model: torch.nn.Module, tmp_path: Path
) -> None:
    result = export_model(model, tmp_path / "r18.pt2", preprocessing=PREP, name="resnet18")
    loaded = torch.export.load(result.path).module()
    for batch in (1, 5):  # the export traced batch 2
        x = torch.rand(batch, 3, 64, 64) * 255 - 120
        with torch.no_grad():
            assert (loaded(x) - model(x)).abs().max().item() <= 1e-4 * model(x).abs().max()
    sidecar = json.loads(result.sidecar_path.read_text())
    assert sidecar["model"] == "resnet18" and sidecar["format"] == "exported-program"
    assert sidecar["input"]["shape"] == ["batch", 3, 64, 64]
    assert sidecar["parity"]["passed"] and sidecar["parity"]["inputs"] == 2
    assert "max |diff|" in result.summary()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r18.json", "r18.pt2"]


def test_a_file_off_eager_is_refused_and_nothing_is_left(
    model: torch.nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pipeline.write_program

    def planted(*args: object) -> object:
        runner = real(*args)  # type: ignore[arg-type]
        return lambda x: runner(x) * 1.001  # 0.1 % off: far above the 1e-4 bound

    monkeypatch.setattr(pipeline, "write_program", planted)
    with pytest.raises(ExportError, match="off eager PyTorch"):
        export_model(model, tmp_path / "r18.onnx", format="onnx", preprocessing=PREP)
    assert list(tmp_path.iterdir()) == []


def test_bad_output_paths_say_what_to_do(model: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"ends in \.onnx"):
        export_model(model, tmp_path / "r18.pt2", format="onnx", preprocessing=PREP)
    with pytest.raises(ExportError, match="does not exist"):
        export_model(model, tmp_path / "no" / "r18.pt2", preprocessing=PREP)
    with pytest.raises(ValueError, match="unknown export format 'onxx'"):
        export_model(model, tmp_path / "r18.onnx", format="onxx", preprocessing=PREP)  # type: ignore[arg-type]


def test_a_missing_extra_names_the_install_command(
    model: torch.nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxscript" else real(name, *a),
    )
    with pytest.raises(
        ExportError, match=r"needs onnxscript: pip install 'assembled-lightning\[deploy\]'"
    ):
        export_model(model, tmp_path / "r18.onnx", format="onnx", preprocessing=PREP)
    assert list(tmp_path.iterdir()) == []


def test_parity_and_agreement_against_hand_computed_values() -> None:
    batches = [torch.tensor([[1.0, 2.0, -3.0]]), torch.tensor([[0.5, 0.0, 0.0], [4.0, 1.0, 0.0]])]
    parity = measure_parity(
        lambda x: x, lambda x: x + torch.tensor([0.0, 1e-3, 0.0]), batches, 1e-4
    )
    assert (parity.max_abs_diff, parity.max_abs_output, parity.inputs) == pytest.approx(
        (1e-3, 4.0, 3),
        rel=1e-4,  # float32 addition
    )
    assert parity.bound == pytest.approx(4e-4) and not parity.passed
    flipped = [torch.tensor([[1.0, 0.0], [0.0, 1.0]])]
    agreement = measure_agreement(
        lambda x: x, lambda x: x.flip(0) * 0 + torch.tensor([[1.0, 0.0]]), flipped
    )
    # outputs [1, 0], [1, 0] against [1, 0], [0, 1]: one of two agree; cosines 1 and 0
    assert agreement.top1_agreement == 0.5
    assert (agreement.mean_cosine, agreement.min_cosine) == pytest.approx((0.5, 0.0))


def test_calibration_and_held_out_images_are_disjoint_draws_of_the_split() -> None:
    data = SyntheticShapesDataModule(val_size=100, batch_size=16, seed=5)
    images = calibration_images(data, calibration_batches=2, held_out_batches=3)
    assert [len(b) for b in images.calibration] == [16, 16]
    assert [len(b) for b in images.held_out] == [16, 16, 16]
    rows = {tuple(row.flatten()[:64].tolist()) for batch in images.calibration for row in batch}
    held = {tuple(row.flatten()[:64].tolist()) for batch in images.held_out for row in batch}
    assert len(rows) == 32 and len(held) == 48 and not rows & held
    data.setup("validate")
    first = data.val_set[0]["image"]
    assert not any(torch.equal(first, row) for row in images.calibration[0][:8])  # shuffled
    with pytest.raises(ValueError, match="fewer than 7 calibration batches"):
        calibration_images(data, calibration_batches=7, held_out_batches=1)


def test_an_onnx_runner_has_the_batch_free(model: torch.nn.Module, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="needs the [deploy] extra")
    result = export_model(model, tmp_path / "r18.onnx", format="onnx", preprocessing=PREP)
    run = onnx_runner(result.path, threads=1)
    x = torch.rand(1, 3, 64, 64) * 255 - 120
    with torch.no_grad():
        assert (run(x) - model(x)).abs().max().item() <= 1e-4 * model(x).abs().max()
