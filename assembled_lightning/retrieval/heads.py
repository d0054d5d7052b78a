"""Margin heads: classification on the unit sphere, the training signal of the paper's retrieval
models (arXiv 2001.06268, §4: a cosine-softmax loss, ArcFace with margin 0.3 on SOP).

Every kind scores an embedding ``x`` against one learned direction ``w_j`` per training class by
``cos θ_j = x̂ · ŵ_j`` and multiplies by ``scale``; the margin kinds make the true class ``y``
harder before the softmax:

- ``norm_softmax`` (normalised / cosine softmax, Zhai & Wu 2018): ``s · cos θ_j``;
- ``cosface`` (additive cosine margin, Wang et al. 2018): ``s · (cos θ_y − m)``;
- ``arcface`` (additive angular margin, Deng et al. 2019): ``s · cos(θ_y + m)`` while
  ``θ_y ≤ π − m``; beyond, where ``cos(θ + m)`` would rise again, ``s · (cos θ_y − m · sin m)``
  (InsightFace's continuation), so the logit keeps falling as ``θ_y`` grows.

ArcFace takes ``θ = acos(cos θ)`` with ``cos θ`` clamped into ``[−1 + 1e-7, 1 − 1e-7]``, so an
embedding on (or opposite) its class direction gets a finite gradient, never a NaN.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from .pooling import check_choice

MarginKind = Literal["norm_softmax", "cosface", "arcface"]
MARGIN_KINDS: tuple[str, ...] = get_args(MarginKind)
_COS_LIMIT = 1.0 - 1e-7  # acos' derivative −1/√(1 − c²) stays finite inside this


class MarginHead(nn.Module):
    """Scaled cosine logits of ``num_classes`` class directions, with the true class's margin.

    ``forward(embeddings, target)`` returns ``[N, num_classes]`` logits for cross-entropy;
    without ``target`` (evaluation) no margin is applied.

    Args:
        in_features: Width of the embeddings.
        num_classes: Training classes.
        kind: ``norm_softmax``, ``cosface`` or ``arcface``.
        scale: The logit scale ``s`` (inverse softmax temperature).
        margin: The margin ``m``: a cosine for ``cosface``, radians for ``arcface``; must be 0
            for ``norm_softmax``.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        kind: MarginKind = "norm_softmax",
        scale: float = 16.0,
        margin: float = 0.0,
    ) -> None:
        super().__init__()
        check_choice("margin head kind", kind, MARGIN_KINDS)
        if in_features < 1 or num_classes < 1:
            raise ValueError(
                f"in_features and num_classes must be >= 1, got {in_features} and {num_classes}"
            )
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if kind == "norm_softmax" and margin != 0:
            raise ValueError(
                f"norm_softmax has no margin, got margin={margin}: use kind 'cosface' or "
                "'arcface' for a margin, or set margin 0"
            )
        if kind == "arcface" and not 0 <= margin < math.pi / 2:
            raise ValueError(f"arcface's margin is an angle in [0, π/2) radians, got {margin}")
        if kind == "cosface" and not 0 <= margin < 2:
            raise ValueError(f"cosface's margin is a cosine in [0, 2), got {margin}")
        self.kind = kind
        self.scale = scale
        self.margin = margin
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)

    def cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``cos θ`` of every embedding with every class direction, in float32."""
        return F.normalize(embeddings.float(), dim=1) @ F.normalize(self.weight.float(), dim=1).T

    def target_cosines(self, cosines: torch.Tensor) -> torch.Tensor:
        """The true class's cosine with the margin applied (before the scale)."""
        if self.kind == "cosface":
            return cosines - self.margin
        if self.kind == "arcface":
            theta = torch.acos(cosines.clamp(-_COS_LIMIT, _COS_LIMIT))
            continuation = cosines - self.margin * math.sin(self.margin)
            return torch.where(
                theta <= math.pi - self.margin, torch.cos(theta + self.margin), continuation
            )
        return cosines

    def forward(self, embeddings: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        cosines = self.cosines(embeddings)
        if target is not None and self.margin:
            rows = torch.arange(len(target), device=target.device)
            true = cosines[rows, target]
            cosines = cosines.index_put((rows, target), self.target_cosines(true))
        return self.scale * cosines

    def extra_repr(self) -> str:
        classes, features = self.weight.shape
        return (
            f"in_features={features}, num_classes={classes}, kind={self.kind}, "
            f"scale={self.scale}, margin={self.margin}"
        )
