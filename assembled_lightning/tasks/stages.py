"""A task's fine-tuning stages: which stage every trainable parameter and BatchNorm belongs to,
from the ``parameter_stages`` of the backbones inside the model (``stem`` .. ``head``), and the
SGD groups per stage × weight decay that the fine-tuning callbacks scale."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..models import Backbone
from ..models.base import HEAD_STAGE
from ..models.layers import DropBlock2d


def parameter_groups(
    model: nn.Module, weight_decay: float, decay_bias: bool = True
) -> list[dict[str, Any]]:
    """Two SGD groups. As the original: every trainable variable except BatchNorm's is decayed,
    the classifier bias included (``decay_bias=False`` keeps all biases undecayed)."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return _decay_groups(trainable, _norm_parameters(model.modules()), weight_decay, decay_bias)


def _norm_parameters(modules: Iterable[nn.Module]) -> set[int]:
    return {
        id(parameter)
        for module in modules
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        for parameter in module.parameters(recurse=False)
    }


def _decay_groups(
    parameters: list[tuple[str, nn.Parameter]],
    norm_parameters: set[int],
    weight_decay: float,
    decay_bias: bool,
    prefix: str = "",
) -> list[dict[str, Any]]:
    """The original's rule on named parameters: a ``decay`` and a ``no_decay`` group."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, parameter in parameters:
        skip = id(parameter) in norm_parameters or (not decay_bias and name.endswith(".bias"))
        (no_decay if skip else decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay, "name": f"{prefix}decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": f"{prefix}no_decay"},
    ]


def outermost_backbones(model: nn.Module) -> list[Backbone]:
    """The ``Backbone`` modules of ``model`` (itself included) that no other one contains: a
    wrapper's backbone, not the blocks of a backbone nested in another."""
    found: list[tuple[str, Backbone]] = []
    for name, module in model.named_modules():
        if isinstance(module, Backbone) and not any(
            name.startswith(f"{outer}.") or not outer for outer, _ in found
        ):
            found.append((name, module))
    return [backbone for _, backbone in found]


@dataclass
class StageLayout:
    """Stages in forward order (``head`` last) and, per stage, its trainable parameters (with
    their names in the task), its BatchNorm modules and its DropBlock layers."""

    names: list[str]
    parameters: dict[str, list[tuple[str, nn.Parameter]]]
    norms: dict[str, list[nn.modules.batchnorm._BatchNorm]]
    dropblocks: dict[str, list[DropBlock2d]]

    def depth(self, stage: str) -> int:
        """Stages between ``stage`` and the head: 0 for the head, 1 for the last backbone
        stage, ... (the exponent of layer-wise LR decay, the order of staged unfreezing)."""
        return len(self.names) - 1 - self.names.index(stage)


def stage_layout(root: nn.Module, model: nn.Module, skip: Iterable[nn.Module] = ()) -> StageLayout:
    """Assign every module of ``root`` to a stage: those of a backbone stage of ``model`` to
    that stage, all others (a retrieval embedding or margin head, a loss's weights) to
    ``head``. The modules under ``skip`` (an EMA copy, never trained) are left out. Backbones
    with the same stage names (several in one wrapper) share those stages."""
    names: list[str] = []
    module_stage: dict[nn.Module, str] = {}
    for backbone in outermost_backbones(model):
        for stage, module_names in backbone.parameter_stages():
            if stage != HEAD_STAGE and stage not in names:
                names.append(stage)
            for module_name in module_names:
                for module in backbone.get_submodule(module_name).modules():
                    module_stage.setdefault(module, stage)
    names.append(HEAD_STAGE)
    layout = StageLayout(
        names,
        parameters={s: [] for s in names},
        norms={s: [] for s in names},
        dropblocks={s: [] for s in names},
    )
    skipped = {module for outer in skip for module in outer.modules()}
    seen: set[int] = set()
    for module_name, module in root.named_modules():
        if module in skipped:
            continue
        stage = module_stage.get(module, HEAD_STAGE)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            layout.norms[stage].append(module)
        elif isinstance(module, DropBlock2d):
            layout.dropblocks[stage].append(module)
        for name, parameter in module.named_parameters(recurse=False):
            if parameter.requires_grad and id(parameter) not in seen:
                seen.add(id(parameter))
                prefix = f"{module_name}." if module_name else ""
                layout.parameters[stage].append((prefix + name, parameter))
    return layout


def stage_parameter_groups(
    layout: StageLayout, weight_decay: float, decay_bias: bool = True
) -> list[dict[str, Any]]:
    """Two SGD groups per stage, from the head down (so that group 0 is the head's, whose LR
    the logs show): ``<stage>.decay`` and ``<stage>.no_decay``, each tagged ``stage``. The
    original's rule: every trainable variable except BatchNorm's is decayed, the classifier
    bias included (``decay_bias=False`` keeps all biases undecayed). Empty groups are kept, so
    the groups of a model do not depend on its options."""
    norm_parameters = _norm_parameters(norm for norms in layout.norms.values() for norm in norms)
    groups: list[dict[str, Any]] = []
    for stage in reversed(layout.names):
        for group in _decay_groups(
            layout.parameters[stage], norm_parameters, weight_decay, decay_bias, f"{stage}."
        ):
            groups.append({**group, "stage": stage})
    return groups
