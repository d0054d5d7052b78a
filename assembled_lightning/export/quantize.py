"""int8 post-training static quantization through the two maintained paths.

- ``onnxruntime``: ONNX Runtime's ``quantize_static``, QDQ format, symmetric int8 weights per
  output channel in 7 bits (``reduce_range``), asymmetric uint8 activations per tensor with
  min/max ranges from the calibration images. uint8 activations (U8S8) are what ONNX
  Runtime's x86 int8 convolutions take; with int8 ones (S8S8) part of the convolutions fall
  back to float on AVX2 CPUs (ResNet-50 int8 1.1× instead of 1.8× faster than FP32 here). Full
  8-bit weights overflow the 16-bit intermediate sums of those kernels on CPUs without VNNI
  (as this project's CI machine): a tiny trained ResNet-18 agreed with FP32 on 92 % of
  held-out images with 8-bit weights, 99 % with 7-bit ones, as with the kernels switched off.
  The result is one ``.onnx`` file that ONNX Runtime runs as int8 kernels on x86 and ARM CPUs
  (and ORT Mobile) with no compiler step.
- ``x86-inductor``: torchao's pt2e with ``X86InductorQuantizer`` (symmetric int8 weights per
  output channel, asymmetric uint8 activations per tensor, min/max observers). The converted
  graph holds quantize / dequantize pairs around float ops; ``torch.compile`` (Inductor) fuses
  them into int8 kernels on x86. Saved as an ExportedProgram; without compilation it runs,
  slowly, as simulated int8.

``torch.ao.quantization`` is deprecated and not used. torchao's XNNPACK quantizer moved to
ExecuTorch, which does not install from PyPI with this torch: not offered.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from .parity import ExportError
from .programs import require

QuantBackend = Literal["onnxruntime", "x86-inductor"]
BACKEND_OF_FORMAT: dict[str, QuantBackend] = {
    "onnx": "onnxruntime",
    "exported-program": "x86-inductor",
}
"""Each export format has one int8 path: the runtime that reads the file quantizes it."""
SCHEMES: dict[QuantBackend, str] = {
    "onnxruntime": "QDQ; int8 weights in 7 bits (reduce_range), symmetric, per output "
    "channel; uint8 activations, asymmetric, per tensor; min/max calibration",
    "x86-inductor": "pt2e; int8 weights, symmetric, per output channel; uint8 activations, "
    "asymmetric, per tensor; min/max calibration",
}


def x86_inductor_quantizer() -> Any:
    require("torchao", purpose="int8 quantization through pt2e")
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86

    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
    return quantizer


@torch.no_grad()
def quantize_pt2e(
    program: torch.export.ExportedProgram,
    calibration: Iterable[torch.Tensor],
    quantizer: Any = None,
) -> torch.fx.GraphModule:
    """pt2e on an exported eval-mode model (``programs.export_program``): insert observers
    (``prepare_pt2e``), run the calibration images, replace observers by quantize / dequantize
    (``convert_pt2e``). ``quantizer``: any pt2e quantizer (default ``X86InductorQuantizer``)."""
    quantizer = quantizer if quantizer is not None else x86_inductor_quantizer()
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(program.module(), quantizer)
    seen = 0
    for batch in calibration:
        prepared(batch)
        seen += 1
    if not seen:
        raise ExportError("int8 calibration needs at least one batch of images")
    return convert_pt2e(prepared)


class _Batches:
    """ONNX Runtime's calibration reader protocol over tensors."""

    def __init__(self, input_name: str, batches: Sequence[torch.Tensor]) -> None:
        self.feeds = iter([{input_name: batch.numpy()} for batch in batches])

    def get_next(self) -> dict[str, Any] | None:
        return next(self.feeds, None)


def quantize_onnx(
    fp32_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    calibration: Sequence[torch.Tensor],
) -> None:
    """ONNX Runtime static QDQ quantization of an FP32 ``.onnx`` (shape inference and graph
    clean-up first, as ONNX Runtime recommends), written to ``out``."""
    require("onnxruntime", "onnx", purpose="int8 quantization through ONNX Runtime")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ExportError("int8 calibration needs at least one batch of images")
    reader = type("Reader", (_Batches, CalibrationDataReader), {})("image", calibration)
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(os.fspath(fp32_path), os.fspath(prepared))
        quantize_static(
            prepared,
            os.fspath(out),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            calibration_cache_path=Path(scratch) / "ranges",
        )
