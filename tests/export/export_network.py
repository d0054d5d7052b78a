"""One tiny architecture through the package's three export paths, read back as a runtime
would; run in a worker process by ``test_every_architecture``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tiny_models import images, tiny_model
from torch import nn

from assembled_lightning.export.programs import export_program, save_exported_program, save_onnx
from assembled_lightning.export.quantize import quantize_pt2e


@dataclass(frozen=True)
class ExportedNetwork:
    eager: torch.Tensor
    program_output: torch.Tensor
    """The saved ``.pt2``, loaded with ``torch.export.load``."""
    onnx_output: torch.Tensor
    """The saved ``.onnx`` in an ONNX Runtime session."""
    int8_output: torch.Tensor
    """The pt2e-converted graph (simulated int8)."""
    weight_layers: int
    """Conv2d and Linear modules of the eager model."""
    per_channel_weights: int
    """Per-channel dequantize nodes in the converted pt2e graph (one per quantized weight)."""


def export_network(name: str, folder: str) -> ExportedNetwork:
    import onnxruntime

    torch.set_num_threads(1)
    model = tiny_model(name)
    files = Path(folder) / name
    files.mkdir()
    program = export_program(model, images(2, seed=1))
    save_exported_program(program, files / "model.pt2")
    save_onnx(program, files / "model.onnx")
    quantized = quantize_pt2e(program, [images(4, seed=2), images(4, seed=3)])

    x = images(3, seed=7)  # batch 3: the export saw batch 2, the batch dimension is free
    with torch.no_grad():
        eager = model(x)
        from_disk = torch.export.load(files / "model.pt2").module()(x)
        int8 = quantized(x)
    session = onnxruntime.InferenceSession(files / "model.onnx", providers=["CPUExecutionProvider"])
    (onnx_output,) = session.run(None, {"image": x.numpy()})
    targets = [str(node.target) for node in quantized.graph.nodes]
    return ExportedNetwork(
        eager=eager,
        program_output=from_disk,
        onnx_output=torch.from_numpy(onnx_output),
        int8_output=int8,
        weight_layers=sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()),
        per_channel_weights=sum("dequantize_per_channel" in target for target in targets),
    )
