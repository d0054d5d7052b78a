"""An eval-mode model → a file a runtime loads: ``torch.export``'s ExportedProgram (``.pt2``) or
ONNX (``.onnx``, through the dynamo exporter), with a dynamic batch dimension.

Each format has a runner that calls the file as its runtime would (the ExportedProgram's module,
an ONNX Runtime session), so parity is measured on what was written, not on the graph in memory.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import nn

from .parity import ExportError, Runner

ExportFormat = Literal["exported-program", "onnx"]
FORMAT_SUFFIX: dict[str, str] = {"exported-program": ".pt2", "onnx": ".onnx"}
ONNX_OPSET = 18
"""The dynamo exporter's own opset (ONNX Runtime ≥ 1.14 runs it; the quantizer handles it)."""
DEPLOY_EXTRA = "pip install 'assembled-lightning[deploy]'"


def check_format(format: str) -> ExportFormat:
    if format not in FORMAT_SUFFIX:
        raise ValueError(f"unknown export format {format!r}; use one of {get_args(ExportFormat)}")
    return format  # type: ignore[return-value]


def require(*modules: str, purpose: str) -> None:
    """Fail with the install command when an optional dependency of ``purpose`` is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"{purpose} needs {', '.join(missing)}: {DEPLOY_EXTRA}")


def batch_dimension() -> dict[str, dict[int, torch.export.Dim]]:
    """The input's batch dimension left free (``torch.export`` would fix it to the example's)."""
    return {"x": {0: torch.export.Dim("batch", min=1, max=4096)}}


def export_program(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``torch.export`` of an eval-mode model (the caller's to set: DropBlock and batch
    statistics of training mode would be traced) on ``example`` (batch ≥ 2, so that the batch
    is not specialised), with the batch dimension dynamic."""
    with torch.no_grad():
        return torch.export.export(model, (example,), dynamic_shapes=batch_dimension())


def save_exported_program(program: torch.export.ExportedProgram, path: Path) -> None:
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")  # torch wants the .pt2
    torch.export.save(program, temporary)
    temporary.replace(path)


def save_onnx(program: torch.export.ExportedProgram, path: Path) -> None:
    """ONNX of an ExportedProgram through the dynamo exporter (the TorchScript one is
    deprecated), input ``image``, output ``logits``, the program's dynamic batch kept."""
    require("onnx", "onnxscript", purpose="ONNX export")
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            program,
            (),
            temporary,
            dynamo=True,
            input_names=["image"],
            output_names=["logits"],
            opset_version=ONNX_OPSET,
            external_data=False,
            verbose=False,
        )
    temporary.replace(path)


def exported_program_runner(path: str | os.PathLike[str]) -> Runner:
    """The saved ExportedProgram as a callable (its eager interpreter: no compilation)."""
    module = torch.export.load(os.fspath(path)).module()
    return lambda batch: module(batch)


def onnx_runner(path: str | os.PathLike[str], threads: int = 0) -> Runner:
    """An ONNX Runtime CPU session of the file (``threads`` per operator and across operators;
    0: ONNX Runtime's default)."""
    require("onnxruntime", purpose="running an ONNX file")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(
        os.fspath(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name

    def run(batch: torch.Tensor) -> torch.Tensor:
        (output,) = session.run(None, {name: batch.detach().cpu().float().numpy()})
        return torch.from_numpy(output)

    return run


RUNNERS: dict[str, Callable[[Path], Runner]] = {
    "exported-program": exported_program_runner,
    "onnx": onnx_runner,
}


def write_program(
    program: torch.export.ExportedProgram, path: Path, format: ExportFormat
) -> Runner:
    """Write ``program`` as ``format`` at ``path``; the runner of the written file."""
    (save_exported_program if format == "exported-program" else save_onnx)(program, path)
    return RUNNERS[format](path)
