"""Deployment: FP32 export to ExportedProgram (``.pt2``) or ONNX, int8 post-training static
quantization (ONNX Runtime QDQ, or torchao pt2e for x86 Inductor), each written with a JSON
sidecar of its preprocessing and class names and checked against eager PyTorch.

The ONNX and int8 paths need the ``[deploy]`` extra (onnx, onnxscript, onnxruntime, torchao);
``torch.export`` alone needs nothing more.
"""

from .calibration import CalibrationImages, calibration_images
from .parity import FP32_TOLERANCE, Agreement, ExportError, Parity
from .pipeline import ExportResult, export_model, export_registered, quantize_model
from .preprocessing import Preprocessing, Sidecar, read_preprocessing, weights_preprocessing
from .programs import FORMAT_SUFFIX, ExportFormat, exported_program_runner, onnx_runner
from .quantize import quantize_onnx, quantize_pt2e

__all__ = [
    "FORMAT_SUFFIX",
    "FP32_TOLERANCE",
    "Agreement",
    "CalibrationImages",
    "ExportError",
    "ExportFormat",
    "ExportResult",
    "Parity",
    "Preprocessing",
    "Sidecar",
    "calibration_images",
    "export_model",
    "export_registered",
    "exported_program_runner",
    "onnx_runner",
    "quantize_model",
    "quantize_onnx",
    "quantize_pt2e",
    "read_preprocessing",
    "weights_preprocessing",
]
