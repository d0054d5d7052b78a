"""Class names of a classifier's outputs: ImageNet's (torchvision's list, with the original's
background entry first for its 1001-way heads, ORIGINAL.md §2), a text file of names, and a
check that a list of names fits a head.

Names are plain text (a list, or a file of one name per line), never code or pickles, so reading
them from a downloaded folder is safe.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

IMAGENET_BACKGROUND = "background"
"""Name of class 0 of the original's 1001-way ImageNet heads (``label_offset`` 1)."""


def imagenet_categories(num_classes: int = 1000) -> list[str]:
    """ImageNet-1k's class names in the torchvision order (class ``i`` = synset ``i`` of the sorted
    wnids); 1001 puts the original's background class first, so that name ``i`` is TF class ``i``.
    """
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    if num_classes == len(_IMAGENET_CATEGORIES):
        return list(_IMAGENET_CATEGORIES)
    if num_classes == len(_IMAGENET_CATEGORIES) + 1:
        return [IMAGENET_BACKGROUND, *_IMAGENET_CATEGORIES]
    raise ValueError(
        f"ImageNet has 1000 classes (1001 with the original's background class), not "
        f"{num_classes}: name the classes of another head with a list or a text file"
    )


def read_categories(source: Sequence[str] | str | os.PathLike[str]) -> list[str]:
    """Names from a list, or from a UTF-8 text file of one name per line (blank lines at its end
    ignored); see :func:`category_list` for what a name may be."""
    if not isinstance(source, (str, os.PathLike)):
        return category_list(source, "categories")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(
            f"categories file {path} does not exist: give a text file with one class name per "
            "line (in the order of the model's outputs), or a list of names"
        )
    lines = path.read_text(encoding="utf-8").rstrip("\r\n").split("\n")
    return category_list([line.removesuffix("\r") for line in lines], str(path))


def category_list(names: object, where: str) -> list[str]:
    """``names`` as a list of class names: a non-empty list of non-empty single-line strings
    (as a JSON file stores them), else an error naming ``where``."""
    if not isinstance(names, (list, tuple)):
        raise ValueError(f"{where}: class names must be a list of strings, got {names!r:.80}")
    bad = [name for name in names if not isinstance(name, str) or not name or "\n" in name]
    if not names or bad:
        raise ValueError(
            f"{where}: every class name must be a non-empty single-line string"
            + (f", got {bad[:3]!r}" if bad else ", got no names")
        )
    return list(names)


def check_categories(names: Sequence[str], num_outputs: int, source: str) -> list[str]:
    """``names`` if there is one per output of the head, else an error naming ``source``."""
    if len(names) != num_outputs:
        raise ValueError(
            f"{source} gives {len(names)} class names but the model has {num_outputs} outputs: "
            "give exactly one name per output, in the order of the outputs (a 1001-way head of "
            "the original has the background class first)"
        )
    return list(names)
