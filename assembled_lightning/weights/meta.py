"""What a set of weights says about itself: the meta a pretrained folder keeps, and the class
names of the head that any ``weights=`` source carries (a registered entry, a pretrained folder,
a ``fit`` checkpoint)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .categories import category_list
from .checkpoint import CHECKPOINT_SUFFIXES, read_checkpoint
from .pretrained import read_description, resolve_weights
from .registry import Weights


def pretrained_meta(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The meta a pretrained folder keeps (``num_classes``, ``label_offset``, ``categories``,
    ``preprocessing_type``, ``normalization``, ...), as ``save_pretrained`` or ``convert-tf``
    wrote it; ``registry.transforms_from_meta`` turns it into the eval preprocessing."""
    return dict(read_description(Path(folder))["meta"])


def weights_categories(
    model: str, weights: Weights | str | os.PathLike[str] | None
) -> list[str] | None:
    """The class names of the head that ``weights`` (as a task's ``weights=``: a registered
    entry, ``DEFAULT``, a pretrained folder or a ``fit`` checkpoint of ``model``) carries; None
    for no weights or weights without names."""
    if weights is None:
        return None
    resolved = resolve_weights(model, weights)
    if isinstance(resolved, Weights):
        names = resolved.meta.get("categories")
    elif resolved.suffix in CHECKPOINT_SUFFIXES:
        names = read_checkpoint(resolved).get("categories")
    else:
        folder = resolved if resolved.is_dir() else resolved.parent
        names = read_description(folder)["meta"].get("categories")
    return None if names is None else category_list(names, f"categories of {weights}")
