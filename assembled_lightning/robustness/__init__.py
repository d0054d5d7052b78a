"""Robustness: the 19 ImageNet-C corruptions as batched torch ops, ImageNet-C / ImageNet-P data,
and the metrics the paper reports (mCE, relative mCE, mFR, ECE).

The corruptions, baselines and metrics need only torch and torchmetrics; the DataModules and
:class:`RobustnessTask`, which need Lightning, are imported on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .baselines import ALEXNET_CLEAN_ERROR, ALEXNET_ERRORS, ALEXNET_FLIP_PROBABILITIES
from .corruptions import (
    BENCHMARK_CORRUPTIONS,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    SEVERITIES,
    corrupt,
    get_corruption,
)
from .metrics import CorruptionError, CorruptionErrors, ExpectedCalibrationError, FlipProbability

if TYPE_CHECKING:
    from .datamodules import CorruptedDataModule, ImageNetCDataModule
    from .imagenet_p import ImageNetPDataModule
    from .task import RobustnessTask

_LAZY = {
    "CorruptedDataModule": "datamodules",
    "ImageNetCDataModule": "datamodules",
    "ImageNetPDataModule": "imagenet_p",
    "RobustnessTask": "task",
}

__all__ = [
    "ALEXNET_CLEAN_ERROR",
    "ALEXNET_ERRORS",
    "ALEXNET_FLIP_PROBABILITIES",
    "BENCHMARK_CORRUPTIONS",
    "CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "SEVERITIES",
    "CorruptedDataModule",
    "CorruptionError",
    "CorruptionErrors",
    "ExpectedCalibrationError",
    "FlipProbability",
    "ImageNetCDataModule",
    "ImageNetPDataModule",
    "RobustnessTask",
    "corrupt",
    "get_corruption",
]


def __getattr__(name: str) -> Any:
    """The DataModules and the task, imported with Lightning on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
