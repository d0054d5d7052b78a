"""The original's expected calibration error (``metric/ece_metric.py``) as a torchmetrics
metric: per-bin counts and float64 confidence sums, so it reduces exactly under DDP."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric


class ExpectedCalibrationError(Metric):
    """ECE exactly as the original's ``metric/ece_metric.py``: max-softmax confidence, bins
    (0−ε, 1/n], (1/n, 2/n], …, ((n−1)/n, 1+ε] with ε = 1e-7, ECE = Σ_b (n_b/N)·|acc_b − conf_b|.

    The bins are right-closed: a confidence of exactly 0.1 falls in the first bin (torchmetrics'
    MulticlassCalibrationError closes them on the left). The edges are compared in the
    confidences' dtype, as TF compared float32 with float32 constants. The original divides by
    n_b + 1e-7 (a relative change below 1e-7 per bin), we by n_b. Returns a float64 fraction.

    ``update(preds, target)``: ``preds`` N×C logits (``from_logits=True``) or probabilities.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    count: Tensor
    correct: Tensor
    confidence: Tensor

    def __init__(self, num_bins: int = 10, *, from_logits: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_bins < 1:
            raise ValueError(f"num_bins must be ≥ 1, got {num_bins}")
        self.from_logits = from_logits
        self.edges = [(i + 1) / num_bins for i in range(num_bins - 1)]  # the inner bin edges
        zeros = torch.zeros(num_bins, dtype=torch.long)
        self.add_state("count", zeros.clone(), dist_reduce_fx="sum")
        self.add_state("correct", zeros.clone(), dist_reduce_fx="sum")
        self.add_state("confidence", zeros.double(), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        if preds.dim() != 2 or not preds.is_floating_point() or len(preds) != len(target):
            raise ValueError(
                f"preds must be N×C float scores for {len(target)} targets, "
                f"got shape {tuple(preds.shape)} ({preds.dtype})"
            )
        if preds.dtype in (torch.float16, torch.bfloat16):
            preds = preds.float()
        probs = preds.softmax(-1) if self.from_logits else preds
        confidence, predicted = probs.max(-1)
        if not self.from_logits and bool(((confidence < 0) | (confidence > 1 + 1e-7)).any()):
            raise ValueError("probabilities must lie in [0, 1]: pass from_logits=True for logits")
        edges = torch.tensor(self.edges, dtype=confidence.dtype, device=confidence.device)
        bins = torch.bucketize(confidence, edges, right=False)  # edges[b-1] < conf ≤ edges[b]
        size = self.count.numel()
        self.count += torch.bincount(bins, minlength=size)
        self.correct += torch.bincount(bins[predicted == target], minlength=size)
        self.confidence += torch.bincount(bins, weights=confidence.double(), minlength=size)

    def compute(self) -> Tensor:
        total = self.count.sum()
        if not int(total):
            raise ValueError("ExpectedCalibrationError.compute() before any update")
        # Σ_b (n_b/N)|correct_b/n_b − conf_b/n_b| = Σ_b |correct_b − conf_b| / N
        return (self.correct.double() - self.confidence).abs().sum() / total
