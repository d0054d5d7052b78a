"""Helpers of the corruption tests: our tensors ↔ the reference's uint8 arrays, and the
issue's closeness criterion (``import photos`` from a test in this folder)."""

from __future__ import annotations

import numpy as np
import torch


def as_batch(photos: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """N×H×W×3 uint8 → N×3×H×W float in [0, 1] (the reference's ``x / 255.``)."""
    return torch.from_numpy(photos).permute(0, 3, 1, 2).to(dtype) / 255


def as_reference_uint8(images: torch.Tensor) -> np.ndarray:
    """Our N×3×H×W output in [0, 1] → N×H×W×3 uint8 by the reference's truncation."""
    return np.uint8(np.clip(images.permute(0, 2, 3, 1).double().numpy() * 255, 0, 255))


def assert_uint8_close(
    ours: np.ndarray, reference: np.ndarray, *, max_diff: int = 1, min_fraction: float = 0.999
) -> None:
    """``ours`` matches ``reference`` within ``max_diff`` grey levels on at least
    ``min_fraction`` of the values (the issue's criterion); the message gives the worst case."""
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    diff = np.abs(ours.astype(np.int16) - reference.astype(np.int16))
    within = float((diff <= max_diff).mean())
    assert within >= min_fraction, (
        f"only {within:.5f} of values within {max_diff} level(s); worst {int(diff.max())}, "
        f"mean {diff.mean():.4f}"
    )
