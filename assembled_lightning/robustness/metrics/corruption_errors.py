"""ImageNet-C: CE and mCE normalised by AlexNet (the 15 benchmark corruptions and the paper's
19), relative and un-normalised mCE, as pure functions of an error table, and the
:class:`CorruptionError` metric that fills one (per-cell integer counts: exact under DDP)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from ..baselines import ALEXNET_CLEAN_ERROR, ALEXNET_ERRORS
from ..corruptions import BENCHMARK_CORRUPTIONS, CORRUPTIONS, SEVERITIES

ErrorTable = Mapping[tuple[str, int], float]
"""Top-1 error (fraction) per ``(corruption, severity)``."""

CLEAN = "clean"
"""The ``corruption`` name of clean (uncorrupted) images in :class:`CorruptionError`."""


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


def name_index(name: str, names: Sequence[str], what: str) -> int:
    """Position of ``name`` in ``names``; an unknown one lists the known ``what``s."""
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
            index = torch.full((n,), name_index(corruption, allowed, "corruption"), device=device)
        elif len(corruption) != n:
            raise ValueError(f"got {len(corruption)} corruption names for {n} images")
        else:
            codes = [name_index(c, allowed, "corruption") for c in corruption]
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
