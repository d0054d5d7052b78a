"""ImageNet-C mCE, ImageNet-P mFR and the original's ECE, as torchmetrics metrics.

Every state is a per-cell count or sum, so the metrics reduce exactly under DDP (counts are
integers; only ECE sums confidences, in float64). Every number is a fraction: a report shows
it ×100 (mCE 0.767 is "mCE 76.7", AlexNet scores 1.0 = "100").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from .baselines import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS,
    ALEXNET_FLIP_PROBABILITIES,
    ALL_IMAGENET_P_PERTURBATIONS,
    IMAGENET_P_PERTURBATIONS,
    NOISE_PERTURBATIONS,
)
from .corruptions import BENCHMARK_CORRUPTIONS, CORRUPTIONS, SEVERITIES

ErrorTable = Mapping[tuple[str, int], float]
"""Top-1 error (fraction) per ``(corruption, severity)``."""

CLEAN = "clean"
"""The ``corruption`` name of clean (uncorrupted) images in :class:`CorruptionError`."""

DIFFICULTIES: tuple[int, ...] = (1, 2, 3)
"""ImageNet-P difficulties (test.py ``--difficulty``); AlexNet's FP is known for 1 only."""


# ImageNet-C: pure functions on an error table --------------------------------------------------


def _severity_errors(errors: ErrorTable, corruption: str) -> list[float]:
    absent = [s for s in SEVERITIES if (corruption, s) not in errors]
    if absent:
        raise ValueError(
            f"{corruption}: severities {absent} were not evaluated; a corruption's error needs "
            "all five (averaging only the ones present, as DINOv3 does, biases it)"
        )
    return [errors[corruption, s] for s in SEVERITIES]


def _require_all(errors: ErrorTable, corruptions: Sequence[str], what: str) -> None:
    missing = [c for c in corruptions if not any((c, s) in errors for s in SEVERITIES)]
    if missing:
        raise ValueError(
            f"the {what} over {len(corruptions)} corruptions needs every one of them; not "
            f"evaluated: {', '.join(missing)} (unnormalized_mean_error averages a subset)"
        )


def mean_error(errors: ErrorTable, corruption: str) -> float:
    """The corruption's top-1 error averaged over its 5 severities (not normalised)."""
    return sum(_severity_errors(errors, corruption)) / len(SEVERITIES)


def corruption_error(
    errors: ErrorTable, corruption: str, *, baseline: ErrorTable = ALEXNET_ERRORS
) -> float:
    """CE_c = Σ_s E_s,c / Σ_s E_s,c(AlexNet) (Hendrycks & Dietterich 2019); 1.0 = AlexNet."""
    return sum(_severity_errors(errors, corruption)) / sum(_severity_errors(baseline, corruption))


def relative_corruption_error(
    errors: ErrorTable,
    corruption: str,
    clean_error: float,
    *,
    baseline: ErrorTable = ALEXNET_ERRORS,
    baseline_clean_error: float = ALEXNET_CLEAN_ERROR,
) -> float:
    """Relative CE_c = Σ_s (E_s,c − E_clean) / Σ_s (E_s,c(AlexNet) − E_clean(AlexNet)): how much
    of its clean accuracy the model loses, relative to AlexNet's loss."""
    ours = sum(e - clean_error for e in _severity_errors(errors, corruption))
    theirs = sum(e - baseline_clean_error for e in _severity_errors(baseline, corruption))
    return ours / theirs


def mean_corruption_error(
    errors: ErrorTable,
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
    *,
    baseline: ErrorTable = ALEXNET_ERRORS,
) -> float:
    """mCE: the mean CE over ``corruptions`` — the 15 benchmark ones (official), or
    ``CORRUPTIONS`` (all 19: what assembled-cnn and hence the paper report). Every one must
    have been evaluated at all 5 severities, else ValueError."""
    _require_all(errors, corruptions, "mCE")
    ces = [corruption_error(errors, c, baseline=baseline) for c in corruptions]
    return sum(ces) / len(ces)


def relative_mean_corruption_error(
    errors: ErrorTable,
    clean_error: float,
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
    *,
    baseline: ErrorTable = ALEXNET_ERRORS,
    baseline_clean_error: float = ALEXNET_CLEAN_ERROR,
) -> float:
    """Relative mCE: the mean relative CE over ``corruptions`` (see mean_corruption_error)."""
    _require_all(errors, corruptions, "relative mCE")
    ces = [
        relative_corruption_error(
            errors, c, clean_error, baseline=baseline, baseline_clean_error=baseline_clean_error
        )
        for c in corruptions
    ]
    return sum(ces) / len(ces)


def unnormalized_mean_error(errors: ErrorTable, corruptions: Sequence[str] | None = None) -> float:
    """Mean over corruptions of the 5-severity mean error, not divided by AlexNet's: what
    hendrycks' ImageNet-C/test.py prints, and the only "mCE" of a data set without AlexNet
    baselines (the paper's Food-101 mCE). None: every corruption present in ``errors``."""
    names = list(dict.fromkeys(c for c, _ in errors)) if corruptions is None else corruptions
    if not names:
        raise ValueError("no corruption was evaluated")
    return sum(mean_error(errors, c) for c in names) / len(names)


@dataclass
class CorruptionErrors:
    """What :meth:`CorruptionError.compute` returns. Every value is a fraction (×100 to report).

    mCE over the 15 needs all 15 corruptions at all 5 severities and raises ValueError
    otherwise (naming the missing ones) — a silent NaN or a partial average would end up in a
    table; :meth:`unnormalized_mce` works on whatever subset was evaluated.
    """

    errors: dict[tuple[str, int], float]
    """Top-1 error per evaluated ``(corruption, severity)``."""
    clean_error: float | None = None
    """Top-1 error on the clean images, if any were given (``corruption="clean"``)."""

    @property
    def missing(self) -> tuple[str, ...]:
        """Corruptions of the 19 not evaluated at any severity."""
        return tuple(c for c in CORRUPTIONS if all((c, s) not in self.errors for s in SEVERITIES))

    @property
    def incomplete(self) -> tuple[str, ...]:
        """Corruptions evaluated at some but not all 5 severities (their CE raises)."""
        return tuple(
            c
            for c in CORRUPTIONS
            if c not in self.missing and any((c, s) not in self.errors for s in SEVERITIES)
        )

    def _clean(self) -> float:
        if self.clean_error is None:
            raise ValueError(
                "the relative CE needs the model's clean error: also update the metric with "
                f"corruption={CLEAN!r} on the uncorrupted validation images"
            )
        return self.clean_error

    def mean_error(self, corruption: str) -> float:
        return mean_error(self.errors, corruption)

    def corruption_error(self, corruption: str) -> float:
        return corruption_error(self.errors, corruption)

    def relative_corruption_error(self, corruption: str) -> float:
        return relative_corruption_error(self.errors, corruption, self._clean())

    def mce(self, corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS) -> float:
        """Official mCE (15); ``mce(CORRUPTIONS)`` is the paper's / assembled-cnn's (19)."""
        return mean_corruption_error(self.errors, corruptions)

    def relative_mce(self, corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS) -> float:
        return relative_mean_corruption_error(self.errors, self._clean(), corruptions)

    def unnormalized_mce(self, corruptions: Sequence[str] | None = None) -> float:
        return unnormalized_mean_error(self.errors, corruptions)

    def as_dict(self) -> dict[str, float]:
        """Every number that can be computed from what was evaluated, flat, for a logger:
        ``error/<c>/<s>``, ``clean_error``, ``mean_error/<c>``, ``ce/<c>``, ``relative_ce/<c>``,
        ``mce_15``, ``mce_19``, ``relative_mce_15``, ``relative_mce_19``, ``unnormalized_mce``."""
        out = {f"error/{c}/{s}": e for (c, s), e in self.errors.items()}
        complete = [c for c in CORRUPTIONS if c not in self.missing + self.incomplete]
        if self.clean_error is not None:
            out["clean_error"] = self.clean_error
        for c in complete:
            out[f"mean_error/{c}"] = self.mean_error(c)
            out[f"ce/{c}"] = self.corruption_error(c)
            if self.clean_error is not None:
                out[f"relative_ce/{c}"] = self.relative_corruption_error(c)
        for name, group in (("15", BENCHMARK_CORRUPTIONS), ("19", CORRUPTIONS)):
            if set(group) <= set(complete):
                out[f"mce_{name}"] = self.mce(group)
                if self.clean_error is not None:
                    out[f"relative_mce_{name}"] = self.relative_mce(group)
        if complete and not self.incomplete:
            out["unnormalized_mce"] = self.unnormalized_mce()
        return out


def _top1(preds: Tensor, target: Tensor) -> Tensor:
    if target.dim() != 1:
        raise ValueError(f"target must be N class indices, got shape {tuple(target.shape)}")
    if preds.dim() == 2 and len(preds) == len(target):
        return preds.argmax(-1)
    if preds.shape == target.shape and not preds.is_floating_point():
        return preds
    raise ValueError(
        f"preds must be N×C scores or N class indices for N={len(target)} targets, "
        f"got shape {tuple(preds.shape)} ({preds.dtype})"
    )


def _index(name: str, names: Sequence[str], what: str) -> int:
    try:
        return names.index(name)
    except ValueError:
        raise ValueError(f"unknown {what} {name!r}; choose one of: {', '.join(names)}") from None


class CorruptionError(Metric):
    """Top-1 correct/total per (corruption, severity) over the 19 × 5 ImageNet-C grid, plus
    clean images; :meth:`compute` returns :class:`CorruptionErrors` (CE, mCE 15/19, relative
    and unnormalised mCE).

    ``update(preds, target, corruption, severity)``: ``preds`` N×C scores or N class indices;
    ``corruption`` one name for the batch or one per image (``"clean"`` for clean images, whose
    severity is ignored); ``severity`` an int or N ints in 1…5.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    correct: Tensor
    total: Tensor
    clean_correct: Tensor
    clean_total: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        grid = torch.zeros(len(CORRUPTIONS), len(SEVERITIES), dtype=torch.long)
        self.add_state("correct", grid.clone(), dist_reduce_fx="sum")
        self.add_state("total", grid.clone(), dist_reduce_fx="sum")
        self.add_state("clean_correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("clean_total", torch.tensor(0), dist_reduce_fx="sum")

    def update(
        self,
        preds: Tensor,
        target: Tensor,
        corruption: str | Sequence[str],
        severity: int | Tensor | None = None,
    ) -> None:
        hits = _top1(preds, target) == target
        n, device = len(target), target.device
        allowed = (*CORRUPTIONS, CLEAN)
        if isinstance(corruption, str):
            index = torch.full((n,), _index(corruption, allowed, "corruption"), device=device)
        elif len(corruption) != n:
            raise ValueError(f"got {len(corruption)} corruption names for {n} images")
        else:
            codes = [_index(c, allowed, "corruption") for c in corruption]
            index = torch.tensor(codes, dtype=torch.long, device=device)
        clean = index == len(CORRUPTIONS)
        self.clean_correct += (hits & clean).sum()
        self.clean_total += clean.sum()
        if bool(clean.all()):
            return
        if (
            isinstance(severity, bool)
            or not isinstance(severity, (int, Tensor))
            or (isinstance(severity, Tensor) and severity.is_floating_point())
        ):
            raise ValueError(f"corrupted images need an integer severity 1…5, got {severity!r}")
        level = torch.as_tensor(severity, device=device).long().expand(n)
        corrupted = ~clean
        if bool((corrupted & ((level < 1) | (level > len(SEVERITIES)))).any()):
            raise ValueError(f"severities must be in 1…5, got {level[corrupted].unique().tolist()}")
        cell = (index * len(SEVERITIES) + level - 1)[corrupted]
        size = self.total.numel()
        self.total += torch.bincount(cell, minlength=size).view_as(self.total)
        self.correct += torch.bincount(cell[hits[corrupted]], minlength=size).view_as(self.total)

    def compute(self) -> CorruptionErrors:
        errors = {
            (c, s): (int(self.total[i, j]) - int(self.correct[i, j])) / int(self.total[i, j])
            for i, c in enumerate(CORRUPTIONS)
            for j, s in enumerate(SEVERITIES)
            if int(self.total[i, j])
        }
        clean_total = int(self.clean_total)
        clean = (clean_total - int(self.clean_correct)) / clean_total if clean_total else None
        return CorruptionErrors(errors, clean)


# ImageNet-P --------------------------------------------------------------------------------------


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
        p = _index(perturbation, ALL_IMAGENET_P_PERTURBATIONS, "perturbation")
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


# Calibration -------------------------------------------------------------------------------------


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


__all__ = [
    "CLEAN",
    "DIFFICULTIES",
    "CorruptionError",
    "CorruptionErrors",
    "ErrorTable",
    "ExpectedCalibrationError",
    "FlipProbability",
    "FlipRates",
    "corruption_error",
    "mean_corruption_error",
    "mean_error",
    "relative_corruption_error",
    "relative_mean_corruption_error",
    "unnormalized_mean_error",
]
