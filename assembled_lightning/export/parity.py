"""How far an exported or quantized model is from eager PyTorch: max |diff| for an FP32 export
(checked against a tolerance at export time), top-1 agreement and output cosine for int8."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

FP32_TOLERANCE = 1e-4
"""Max |exported − eager| allowed for an FP32 export, relative to the largest |eager output|
(floor 1): graph rewrites (BN folding, fused kernels, another summation order) move float32
logits by ~1e-6 of their scale; a wrong graph moves them by far more."""

Runner = Callable[[torch.Tensor], torch.Tensor]


class ExportError(RuntimeError):
    """An export that would not give the eager model's outputs, or that cannot be made."""


@dataclass(frozen=True)
class Parity:
    """Max |exported − eager| over the check inputs, and the bound it was held to."""

    max_abs_diff: float
    max_abs_output: float
    tolerance: float
    inputs: int

    @property
    def bound(self) -> float:
        return self.tolerance * max(1.0, self.max_abs_output)

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.bound

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "max_abs_diff": self.max_abs_diff,
            "max_abs_output": self.max_abs_output,
            "tolerance": self.tolerance,
            "bound": self.bound,
            "inputs": self.inputs,
            "passed": self.passed,
        }


@torch.no_grad()
def measure_parity(
    eager: Runner, exported: Runner, batches: Iterable[torch.Tensor], tolerance: float
) -> Parity:
    worst = largest = 0.0
    count = 0
    for batch in batches:
        expected, actual = eager(batch), exported(batch)
        if actual.shape != expected.shape:
            raise ExportError(
                f"exported output {tuple(actual.shape)} ≠ eager {tuple(expected.shape)}"
            )
        worst = max(worst, (actual.float() - expected.float()).abs().max().item())
        largest = max(largest, expected.abs().max().item())
        count += len(batch)
    return Parity(worst, largest, tolerance, count)


@dataclass(frozen=True)
class Agreement:
    """int8 against FP32 on images the calibration did not see."""

    top1_agreement: float
    """Fraction of images whose top-1 class is the same."""
    mean_cosine: float
    """Mean cosine similarity of the output vectors."""
    min_cosine: float
    images: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "top1_agreement": self.top1_agreement,
            "mean_cosine": self.mean_cosine,
            "min_cosine": self.min_cosine,
            "images": self.images,
        }


@torch.no_grad()
def measure_agreement(
    reference: Runner, quantized: Runner, batches: Iterable[torch.Tensor]
) -> Agreement:
    same, cosines = 0, []
    for batch in batches:
        expected, actual = reference(batch).float(), quantized(batch).float()
        same += int((expected.argmax(1) == actual.argmax(1)).sum())
        cosines.append(F.cosine_similarity(expected, actual, dim=1))
    if not cosines:
        raise ExportError("no held-out images to compare int8 with FP32 on")
    cosine = torch.cat(cosines)
    return Agreement(same / len(cosine), cosine.mean().item(), cosine.min().item(), len(cosine))
