"""ImageNet-P: flip probability per perturbation and difficulty, mFR normalised by AlexNet,
and the mean top-5 distance (mT5D), as the :class:`FlipProbability` metric (integer counts:
exact under DDP)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from ..baselines import (
    ALEXNET_FLIP_PROBABILITIES,
    ALL_IMAGENET_P_PERTURBATIONS,
    IMAGENET_P_PERTURBATIONS,
    NOISE_PERTURBATIONS,
)
from .corruption_errors import name_index

DIFFICULTIES: tuple[int, ...] = (1, 2, 3)
"""ImageNet-P difficulties (test.py ``--difficulty``); AlexNet's FP is known for 1 only."""


@dataclass
class FlipRates:
    """What :meth:`FlipProbability.compute` returns; fractions (×100 to report)."""

    flip_probabilities: dict[tuple[str, int], float]
    """FP per evaluated ``(perturbation, difficulty)``."""
    top5_distances: dict[tuple[str, int], float]
    """uT5D (un-normalised top-5 distance) per ``(perturbation, difficulty)`` updated with
    scores. Not divided by AlexNet's: those normalisers are unpublished, so no mT5D."""

    @property
    def missing(self) -> tuple[str, ...]:
        """Test perturbations without difficulty-1 predictions (mFR needs all 10)."""
        return tuple(p for p in IMAGENET_P_PERTURBATIONS if (p, 1) not in self.flip_probabilities)

    def flip_rate(self, perturbation: str) -> float:
        """FR_p = FP_p / FP_p(AlexNet), at difficulty 1 (the only one AlexNet's FP is for)."""
        if (perturbation, 1) not in self.flip_probabilities:
            raise ValueError(f"{perturbation} was not evaluated at difficulty 1")
        return self.flip_probabilities[perturbation, 1] / ALEXNET_FLIP_PROBABILITIES[perturbation]

    def mfr(self, perturbations: Sequence[str] = IMAGENET_P_PERTURBATIONS) -> float:
        """mFR: mean FR over the 10 test perturbations (ValueError naming any missing)."""
        missing = [p for p in perturbations if (p, 1) not in self.flip_probabilities]
        if missing:
            raise ValueError(f"mFR needs all {len(perturbations)}; not evaluated: {missing}")
        return sum(self.flip_rate(p) for p in perturbations) / len(perturbations)

    def as_dict(self) -> dict[str, float]:
        """``fp/<p>/<d>``, ``ut5d/<p>/<d>``, ``fr/<p>``, ``mfr`` where computable."""
        out = {f"fp/{p}/{d}": v for (p, d), v in self.flip_probabilities.items()}
        out |= {f"ut5d/{p}/{d}": v for (p, d), v in self.top5_distances.items()}
        out |= {f"fr/{p}": self.flip_rate(p) for p, d in self.flip_probabilities if d == 1}
        if not self.missing:
            out["mfr"] = self.mfr()
        return out


class FlipProbability(Metric):
    """ImageNet-P flip probability (Hendrycks & Dietterich 2019; ImageNet-P/test.py).

    ``update(predictions, perturbation, difficulty=1)``: ``predictions`` V×T top-1 classes of
    the T frames of V videos, or V×T×C scores (then the top-5 distance is measured too). Noise
    perturbations compare every frame with frame 1 (their frames are independent noisy copies,
    and difficulty selects a noisier data set); the others compare frame j with frame j − d,
    d = difficulty (the reference's d interleaved sub-sequences, each compared consecutively).

    The reference averages per video, then over videos; we sum flips and comparisons, which is
    the same because every video of a perturbation has the same length — checked: mixing
    lengths for one perturbation raises.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    flips: Tensor
    comparisons: Tensor
    distance: Tensor
    ranked_comparisons: Tensor
    frames_max: Tensor
    frames_min: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        grid = torch.zeros(len(ALL_IMAGENET_P_PERTURBATIONS), len(DIFFICULTIES), dtype=torch.long)
        for name in ("flips", "comparisons", "distance", "ranked_comparisons"):
            self.add_state(name, grid.clone(), dist_reduce_fx="sum")
        self.add_state("frames_max", grid.clone(), dist_reduce_fx="max")
        self.add_state("frames_min", grid.clone().fill_(2**62), dist_reduce_fx="min")

    def update(self, predictions: Tensor, perturbation: str, difficulty: int = 1) -> None:
        p = name_index(perturbation, ALL_IMAGENET_P_PERTURBATIONS, "perturbation")
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be 1, 2 or 3, got {difficulty!r}")
        cell = (p, difficulty - 1)
        top5 = None
        if predictions.is_floating_point() and predictions.dim() == 3:
            if predictions.shape[-1] >= 5:  # fewer classes: no top-5 distance, only flips
                # stable: ties go to the lower class index, like rankdata(-scores, 'ordinal')
                top5 = predictions.argsort(dim=-1, descending=True, stable=True)[..., :5]
            predictions = predictions.argmax(-1) if top5 is None else top5[..., 0]
        if predictions.dim() != 2 or predictions.is_floating_point():
            raise ValueError(
                "predictions must be V×T class indices or V×T×C scores, got shape "
                f"{tuple(predictions.shape)} ({predictions.dtype})"
            )
        videos, frames = predictions.shape
        stride = 1 if perturbation in NOISE_PERTURBATIONS else difficulty
        if frames <= stride:
            raise ValueError(f"{frames} frames leave nothing to compare at stride {stride}")

        def pairs(x: Tensor) -> tuple[Tensor, Tensor]:
            if perturbation in NOISE_PERTURBATIONS:
                return x[:, :1], x[:, 1:]  # frame 1 stays the reference
            return x[:, :-stride], x[:, stride:]

        earlier, later = pairs(predictions)
        self.flips[cell] += (earlier != later).sum()
        self.comparisons[cell] += videos * (frames - stride)
        self.frames_max[cell] = self.frames_max[cell].clamp(min=frames)
        self.frames_min[cell] = self.frames_min[cell].clamp(max=frames)
        if top5 is not None:
            self.distance[cell] += _top5_distance(*pairs(top5)).sum()
            self.ranked_comparisons[cell] += videos * (frames - stride)

    def compute(self) -> FlipRates:
        fp: dict[tuple[str, int], float] = {}
        t5d: dict[tuple[str, int], float] = {}
        for i, p in enumerate(ALL_IMAGENET_P_PERTURBATIONS):
            for j, d in enumerate(DIFFICULTIES):
                if not int(self.comparisons[i, j]):
                    continue
                low, high = int(self.frames_min[i, j]), int(self.frames_max[i, j])
                if low != high:
                    raise ValueError(
                        f"{p} (difficulty {d}) got videos of {low} and {high} frames: the "
                        "reference averages per video, which sums reproduce only for one length"
                    )
                fp[p, d] = int(self.flips[i, j]) / int(self.comparisons[i, j])
                if int(self.ranked_comparisons[i, j]):
                    t5d[p, d] = int(self.distance[i, j]) / int(self.ranked_comparisons[i, j])
        return FlipRates(fp, t5d)


def _top5_distance(earlier: Tensor, later: Tensor) -> Tensor:
    """Top-5 distance between frames (ImageNet-P/test.py, mode 'top5'): with r_k the 0-based
    rank in the later frame of the earlier frame's k-th class, capped at 5, Σ_k<5 |k − r_k|.
    Inputs: each frame's top-5 classes, in order (broadcastable V×P×5); returns V×P."""
    match = earlier.unsqueeze(-1) == later.unsqueeze(-2)  # [..., k, j]: earlier k is later j
    rank = torch.where(match.any(-1), match.int().argmax(-1), 5)
    return (rank - torch.arange(5, device=rank.device)).abs().sum(-1)
