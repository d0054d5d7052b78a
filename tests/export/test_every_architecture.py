"""Every registered architecture (tiny widths) through torch.export, ONNX and pt2e int8.

One ``torch.export`` per architecture feeds the three paths, as in the package. Architectures
whose tiny versions are the same network (``resnet50`` / ``resnet101`` / ``resnet152`` differ
only in block counts, which the tiny version sets to one per stage) are exported once and the
result is checked under every name. Tolerance of the FP32 files: max |file − eager| ≤ 1e-4 ×
max(1, max |eager|), checked again here on inputs the export never saw, read back from disk
with torch's and ONNX Runtime's own loaders.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch
import torch.nn.functional as F
from export_network import ExportedNetwork, export_network
from tiny_models import tiny_model

from assembled_lightning.models import list_models

pytest.importorskip("onnxruntime", reason="needs the [deploy] extra")
pytest.importorskip("torchao", reason="needs the [deploy] extra")
pytest.importorskip("onnxscript", reason="needs the [deploy] extra")

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def results() -> dict[str, ExportedNetwork]:
    """Every architecture exported once per distinct tiny network, in one process per core:
    tracing is single-threaded Python, so two processes halve the wait on the 2-core CI."""
    first_of: dict[str, str] = {}
    for name in list_models():
        first_of.setdefault(repr(tiny_model(name)), name)
    unique = [first_of[key] for key in sorted(first_of, key=len, reverse=True)]  # big first
    context = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory() as folder,
        ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1), mp_context=context) as pool,
    ):
        outputs = pool.map(export_network, unique, [folder] * len(unique))
        done = dict(zip(unique, outputs, strict=True))
    return {name: done[first_of[repr(tiny_model(name))]] for name in list_models()}


def bound(eager: torch.Tensor) -> float:
    return TOLERANCE * max(1.0, eager.abs().max().item())


@pytest.mark.parametrize("name", list_models())
def test_torch_export_file_matches_eager(name: str, results: dict[str, ExportedNetwork]) -> None:
    result = results[name]
    assert result.eager.shape == (3, 5) and result.eager.std() > 0.01
    assert (result.program_output - result.eager).abs().max().item() <= bound(result.eager)


@pytest.mark.parametrize("name", list_models())
def test_onnx_file_matches_eager_in_onnx_runtime(
    name: str, results: dict[str, ExportedNetwork]
) -> None:
    result = results[name]
    assert (result.onnx_output - result.eager).abs().max().item() <= bound(result.eager)


@pytest.mark.parametrize("name", list_models())
def test_pt2e_quantizes_every_weight_layer(name: str, results: dict[str, ExportedNetwork]) -> None:
    """A module called twice, or a layer the quantizer cannot see, would leave a conv in float
    (fewer per-channel weights than layers) or break prepare/convert outright."""
    result = results[name]
    assert result.per_channel_weights == result.weight_layers
    cosine = F.cosine_similarity(result.int8_output, result.eager, dim=1)
    assert cosine.min().item() > 0.95  # random weights, 8 calibration images: 0.979-0.99998
