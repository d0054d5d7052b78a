"""Multi-scale feature maps with timm's API: ``feature_info``, ``out_indices``, ``features_only``.

A backbone offers one feature map per resolution (``Backbone.feature_info``); ``FeatureInfo``
describes them as timm does, one dict per map with ``num_chs``, ``reduction`` (input side /
map side) and ``module`` (the module whose output the map is: a forward-hook target and a
torchvision ``create_feature_extractor`` return node). ``MultiScaleFeatures`` is what
``create_model(name, features_only=True)`` returns: the backbone without its classifier and
without the stages after the last requested map, so nothing unused runs or holds parameters
(no unused-parameter errors under DDP).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

if TYPE_CHECKING:
    from .base import Backbone

FeatureIndices = int | Sequence[int] | None
"""None: every map; an int n: the last n maps; a sequence: those maps (negative from the end)."""


def feature_indices(count: int, indices: FeatureIndices) -> tuple[int, ...]:
    """``indices`` as increasing non-negative map indices, with timm's meaning of each form.

    Maps always come in stage order, so a sequence must be increasing; anything else, or an
    index outside the model's maps, raises a ``ValueError`` naming the valid range.
    """
    valid = f"valid indices are 0..{count - 1} (or -{count}..-1 from the end)"
    if indices is None:
        return tuple(range(count))
    if isinstance(indices, bool | str) or not isinstance(indices, int | Sequence):
        raise ValueError(f"feature indices must be an int or a sequence of ints; {valid}")
    if isinstance(indices, int):
        if not 0 < indices <= count:
            raise ValueError(
                f"an int selects the last n feature maps, n in 1..{count}; got {indices}"
            )
        return tuple(range(count - indices, count))
    resolved: list[int] = []
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, int) or not -count <= index < count:
            raise ValueError(f"feature index {index!r} is not a valid index: {valid}")
        resolved.append(index % count)
    if not resolved or any(a >= b for a, b in itertools.pairwise(resolved)):
        raise ValueError(
            f"feature indices must be non-empty and increasing (maps come in stage order); "
            f"got {tuple(indices)}; {valid}"
        )
    return tuple(resolved)


class FeatureInfo:
    """The feature maps of a backbone and which of them a model returns (``out_indices``).

    Indexing and ``len`` cover every map; ``channels()``, ``reduction()`` and ``module_name()``
    list the returned ones (``idx`` picks maps by index instead), as timm's ``FeatureInfo``.
    """

    def __init__(self, info: Sequence[dict[str, Any]], out_indices: FeatureIndices = None):
        self.info = [dict(entry) for entry in info]
        self.out_indices = feature_indices(len(self.info), out_indices)

    def select(self, out_indices: FeatureIndices) -> FeatureInfo:
        """The same maps, returning ``out_indices`` (timm's ``from_other``)."""
        return FeatureInfo(self.info, out_indices)

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> Any:
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, int):
            return self.info[idx][key]
        return [self.info[i][key] for i in idx]

    def get_dicts(self, idx: int | Sequence[int] | None = None) -> list[dict[str, Any]]:
        indices = self.out_indices if idx is None else [idx] if isinstance(idx, int) else idx
        return [dict(self.info[i]) for i in indices]

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("module", idx)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.info[idx]

    def __len__(self) -> int:
        return len(self.info)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.info)

    def __repr__(self) -> str:
        return f"FeatureInfo({self.info}, out_indices={self.out_indices})"


class MultiScaleFeatures(nn.Module):
    """A backbone that returns the list of feature maps ``out_indices`` (default: all).

    ``model`` is pruned in place: its classifier and every stage after the last requested map
    become ``nn.Identity`` and are never run. Its other modules keep their names under
    ``model.``, so a classifier's state dict loads with ``features.model.load_state_dict(state,
    strict=False)`` (the pruned stages' keys are the only unexpected ones).
    """

    def __init__(self, model: Backbone, out_indices: FeatureIndices = None) -> None:
        super().__init__()
        self.out_indices = tuple(model.prune_intermediate_layers(out_indices))
        self.model = model
        self.feature_info = model.feature_info.select(self.out_indices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.model.forward_intermediates(
            x, indices=self.out_indices, intermediates_only=True
        )
        return cast(list[torch.Tensor], features)
