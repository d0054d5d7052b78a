"""Global pooling of a feature map into one vector per image: average pooling (the original's
``pool_type=gap``) or generalised mean pooling (GeM, Radenović et al. 2018), which the paper's
retrieval models use (arXiv 2001.06268, §4 retrieval)."""

from __future__ import annotations

import difflib
from typing import Literal, get_args

import torch
from torch import nn

PoolingKind = Literal["gap", "gem"]
POOLING_KINDS: tuple[str, ...] = get_args(PoolingKind)


class GlobalAvgPool(nn.Module):
    """Mean over H and W: ``[N, C, H, W]`` → ``[N, C]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class GeM(nn.Module):
    """Generalised mean ``(mean(max(x, eps)^p))^(1/p)`` over H and W: ``p = 1`` is average
    pooling, ``p → ∞`` max pooling; between them it weights the strongest activations more,
    which helps retrieval. Values below ``eps`` are clamped to it first, so that the power of a
    (post-ReLU) zero or a negative input is defined and its gradient finite.

    Args:
        p: The exponent (GeM's paper and ours: 3).
        learn_p: Train ``p`` with the network (a parameter) instead of keeping it fixed (a
            buffer).
        eps: Lower clamp of the inputs.
    """

    p: torch.Tensor

    def __init__(self, p: float = 3.0, learn_p: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        if not p >= 1:
            raise ValueError(f"GeM's p must be >= 1 (1 is average pooling), got {p}")
        if not eps > 0:
            raise ValueError(f"GeM's eps must be > 0, got {eps}")
        self.eps = eps
        value = torch.tensor(float(p))
        if learn_p:
            self.p = nn.Parameter(value)
        else:
            self.register_buffer("p", value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.to(x.dtype)
        return x.clamp(min=self.eps).pow(p).mean((2, 3)).pow(1.0 / p)

    def extra_repr(self) -> str:
        return f"p={float(self.p):.4g}, learn_p={isinstance(self.p, nn.Parameter)}, eps={self.eps}"


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise a ``ValueError`` naming ``value``, the choices and the closest one."""
    if value in choices:
        return
    close = difflib.get_close_matches(value, choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}{hint}")


def make_pooling(kind: PoolingKind, p: float = 3.0, learn_p: bool = False) -> nn.Module:
    """The pooling module of ``kind`` (``gap`` or ``gem`` with ``p``)."""
    check_choice("pooling", kind, POOLING_KINDS)
    return GeM(p, learn_p) if kind == "gem" else GlobalAvgPool()
