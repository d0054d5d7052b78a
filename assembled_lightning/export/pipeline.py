"""One export: a model (FP32, or int8 after calibration) → the file, its preprocessing sidecar,
and the numbers that say it computes what eager PyTorch does."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import lightning as L
import torch
from torch import nn

from ..models.base import Backbone
from ..weights.pretrained import build_model
from ..weights.registry import Weights
from .calibration import CalibrationImages, EvalSplit, calibration_images
from .parity import (
    FP32_TOLERANCE,
    Agreement,
    ExportError,
    Parity,
    measure_agreement,
    measure_parity,
)
from .preprocessing import (
    Preprocessing,
    Sidecar,
    export_categories,
    weights_preprocessing,
    write_sidecar,
)
from .programs import (
    FORMAT_SUFFIX,
    RUNNERS,
    ExportFormat,
    check_format,
    export_program,
    save_exported_program,
    save_onnx,
    write_program,
)
from .quantize import BACKEND_OF_FORMAT, SCHEMES, quantize_onnx, quantize_pt2e


@dataclass(frozen=True)
class ExportResult:
    path: Path
    sidecar_path: Path
    sidecar: Sidecar
    parity: Parity | None
    """FP32 exports: max |file − eager| on the check inputs."""
    agreement: Agreement | None
    """int8 exports: top-1 agreement and cosine with FP32 on held-out images."""

    def summary(self) -> str:
        lines = [f"wrote {self.path} and its preprocessing {self.sidecar_path}"]
        if self.parity is not None:
            p = self.parity
            lines.append(
                f"parity with eager PyTorch on {p.inputs} images: max |diff| {p.max_abs_diff:.3g} "
                f"(outputs up to {p.max_abs_output:.3g}; bound {p.bound:.3g})"
            )
        if self.agreement is not None:
            a = self.agreement
            lines.append(
                f"int8 vs FP32 on {a.images} held-out images: top-1 agreement "
                f"{100 * a.top1_agreement:.1f} %, cosine mean {a.mean_cosine:.4f} "
                f"(min {a.min_cosine:.4f})"
            )
        return "\n".join(lines)


def random_inputs(preprocessing: Preprocessing, count: int = 2, seed: int = 0) -> torch.Tensor:
    """Preprocessed images of uniform random pixels: inputs on the scale real ones have."""
    generator = torch.Generator().manual_seed(seed)
    side = preprocessing.crop
    pixels = torch.randint(0, 256, (count, 3, side, side), generator=generator, dtype=torch.uint8)
    return preprocessing.transform().normalize(pixels.float())


def sidecar_for(
    format: ExportFormat,
    preprocessing: Preprocessing,
    categories: Sequence[str] | None,
    name: str,
    weights: str | None,
    **report: Any,
) -> Sidecar:
    """The sidecar of a file whose input is ``[batch, 3, crop, crop]``; ``report``: its parity
    or quantization figures."""
    return Sidecar(
        model=name,
        weights=weights,
        format=format,
        preprocessing=preprocessing,
        categories=list(categories) if categories is not None else None,
        input_shape=["batch", 3, preprocessing.crop, preprocessing.crop],
        **report,
    )


def output_path(out: str | os.PathLike[str], format: ExportFormat) -> Path:
    path = Path(out)
    if path.suffix != FORMAT_SUFFIX[format]:
        raise ExportError(
            f"{path}: a {format} file ends in {FORMAT_SUFFIX[format]} (its sidecar is "
            f"{path.stem}.json beside it)"
        )
    if not path.parent.is_dir():
        raise ExportError(f"folder {path.parent} does not exist: create it or pick another --out")
    return path


def export_model(
    model: nn.Module,
    out: str | os.PathLike[str],
    *,
    format: ExportFormat = "exported-program",
    preprocessing: Preprocessing,
    categories: Sequence[str] | None = None,
    name: str = "model",
    weights: str | None = None,
    check_inputs: Sequence[torch.Tensor] = (),
    tolerance: float = FP32_TOLERANCE,
) -> ExportResult:
    """Export an FP32 ``model`` (put in eval mode) as ``format`` to ``out`` with its sidecar,
    after checking the written file against eager PyTorch on random images and
    ``check_inputs``; a file off by more than ``tolerance`` (relative to the outputs' scale) is
    not left behind."""
    format = check_format(format)
    path = output_path(out, format)
    model = model.eval()
    batches = [random_inputs(preprocessing), *check_inputs]
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as scratch:
        candidate = Path(scratch) / path.name
        runner = write_program(export_program(model, batches[0]), candidate, format)
        parity = measure_parity(model, runner, batches, tolerance)
        if not parity.passed:
            raise ExportError(
                f"the exported {format} file is off eager PyTorch by {parity.max_abs_diff:.3g} "
                f"(bound {parity.bound:.3g}); nothing was written. Please report it with the "
                "model name and torch version"
            )
        candidate.replace(path)
    sidecar = sidecar_for(format, preprocessing, categories, name, weights, parity=parity.as_dict())
    return ExportResult(path, write_sidecar(sidecar, path), sidecar, parity, None)


def quantize_model(
    model: nn.Module,
    out: str | os.PathLike[str],
    images: CalibrationImages,
    *,
    format: ExportFormat = "onnx",
    preprocessing: Preprocessing,
    categories: Sequence[str] | None = None,
    name: str = "model",
    weights: str | None = None,
    min_agreement: float = 0.0,
) -> ExportResult:
    """int8 post-training static quantization of ``model``, calibrated on
    ``images.calibration`` and judged against FP32 eager on ``images.held_out``, by the
    runtime of ``format`` (``onnx``: ONNX Runtime's QDQ; ``exported-program``: pt2e with the
    x86 Inductor quantizer, see :mod:`.quantize`), written with its sidecar. Below
    ``min_agreement`` top-1 agreement nothing is written."""
    format = check_format(format)
    backend = BACKEND_OF_FORMAT[format]
    path = output_path(out, format)
    model = model.eval()
    example = images.calibration[0]
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as scratch:
        candidate = Path(scratch) / path.name
        if backend == "onnxruntime":
            fp32 = Path(scratch) / "fp32.onnx"
            save_onnx(export_program(model, example), fp32)
            quantize_onnx(fp32, candidate, images.calibration)
        else:
            quantized = quantize_pt2e(export_program(model, example), images.calibration)
            save_exported_program(export_program(quantized, example), candidate)
        agreement = measure_agreement(model, RUNNERS[format](candidate), images.held_out)
        if agreement.top1_agreement < min_agreement:
            raise ExportError(
                f"int8 agrees with FP32 on {100 * agreement.top1_agreement:.1f} % of the held-out "
                f"images, below the {100 * min_agreement:.1f} % asked for; nothing was written. "
                "Calibrate on more batches, or keep this model in FP32"
            )
        candidate.replace(path)
    quantization = {
        "backend": backend,
        "scheme": SCHEMES[backend],
        "calibration_images": sum(len(batch) for batch in images.calibration),
        "agreement_with_fp32": agreement.as_dict(),
    }
    sidecar = sidecar_for(
        format, preprocessing, categories, name, weights, quantization=quantization
    )
    return ExportResult(path, write_sidecar(sidecar, path), sidecar, None, agreement)


def export_registered(
    model: str,
    out: str | os.PathLike[str],
    *,
    weights: Weights | str | os.PathLike[str] | None = None,
    format: ExportFormat = "exported-program",
    num_classes: int | None = None,
    overrides: dict[str, Any] | None = None,
    preprocessing: Preprocessing | None = None,
    int8: bool = False,
    datamodule: L.LightningDataModule | None = None,
    calibration_batches: int = 8,
    held_out_batches: int = 8,
    split: EvalSplit = "val",
    min_agreement: float = 0.0,
) -> ExportResult:
    """``assembled-lightning export``: a registered model with ``weights`` (as ``build_model``
    takes them), its preprocessing and class names from the weights, exported as ``format`` or,
    with ``int8``, quantized by that format's runtime, calibrated on ``datamodule``'s eval
    split."""
    options: dict[str, Any] = dict(overrides or {})
    if num_classes is not None:
        options["num_classes"] = num_classes
    network = build_model(model, weights=weights, **options).eval()
    preprocessing = preprocessing or weights_preprocessing(model, weights)
    categories = export_categories(model, weights, cast(Backbone, network).config.num_classes)
    described: dict[str, Any] = {
        "preprocessing": preprocessing,
        "categories": categories,
        "name": model,
        "weights": None if weights is None else str(weights),
    }
    if not int8:
        checks = (
            calibration_images(datamodule, calibration_batches, 0, split).calibration
            if datamodule is not None
            else []
        )
        return export_model(network, out, format=format, check_inputs=checks, **described)
    if datamodule is None:
        raise ExportError("int8 quantization calibrates on images: give a DataModule (--data)")
    images = calibration_images(datamodule, calibration_batches, held_out_batches, split)
    return quantize_model(
        network, out, images, format=format, min_agreement=min_agreement, **described
    )
