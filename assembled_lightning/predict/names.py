"""Which names the classes of a prediction get, in order of precedence: the writer's own list,
the DataModule's ``classes``, the names the task kept (its checkpoint: the classes it was trained
on), the meta of its weights, else the class indices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..weights.categories import check_categories
from ..weights.meta import weights_categories


def output_names(
    num_outputs: int, categories: Sequence[str] | None, datamodule: Any, task: Any
) -> list[str]:
    """One name per output of the model. A given list of another length is an error; the
    weights' names apply only to the head they came with (a replaced head has other classes)."""
    given = (
        ("the writer's categories", categories),
        ("the DataModule's classes", getattr(datamodule, "classes", None)),
        ("the class names the task's checkpoint kept", getattr(task, "categories", None)),
    )
    for source, names in given:
        if names:
            return check_categories(list(names), num_outputs, source)
    hparams = getattr(task, "hparams", {})
    if isinstance(hparams.get("model"), str) and hparams.get("weights") is not None:
        names = weights_categories(hparams["model"], hparams["weights"])
        if names is not None and len(names) == num_outputs:
            return names
    return [str(index) for index in range(num_outputs)]
