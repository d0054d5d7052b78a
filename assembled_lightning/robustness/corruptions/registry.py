"""The registry every corruption module adds itself to, and the checks ``corrupt`` applies.

A corruption is a function ``fn(images, severity, generator, **inputs) -> images`` on float
N×3×H×W batches in [0, 1] (already validated, computed in at least float32), registered with
:func:`register` together with its group and the keyword inputs a caller may pin (fog's
``plasma``, frost's ``texture``...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

CorruptionFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Corruption:
    """One ImageNet-C corruption: how to apply it and what it assumes."""

    name: str
    group: str
    """The released tar file it ships in: ``noise``, ``blur``, ``weather`` or ``digital``."""
    apply: CorruptionFn
    inputs: tuple[str, ...] = ()
    """Keyword inputs that pin its random parts (``corrupt(..., plasma=...)``)."""
    reference_size: int | None = None
    """Image side the reference hard-codes (e.g. 224 for glass blur's loop bounds); None where
    the reference works at any size. Other sizes run, with that side's absolute constants."""


_REGISTRY: dict[str, Corruption] = {}


def register(
    name: str,
    group: str,
    *,
    inputs: tuple[str, ...] = (),
    reference_size: int | None = None,
) -> Callable[[CorruptionFn], CorruptionFn]:
    """Decorator: add ``fn`` to the registry under ``name``."""

    def add(fn: CorruptionFn) -> CorruptionFn:
        if name in _REGISTRY:
            raise RuntimeError(f"corruption {name!r} is registered twice")
        _REGISTRY[name] = Corruption(name, group, fn, inputs, reference_size)
        return fn

    return add


def registered() -> dict[str, Corruption]:
    return _REGISTRY
