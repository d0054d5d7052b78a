"""``Backbone.parameter_stages``: on every registered model each parameter belongs to exactly one
stage, the one its name says by hand (torchvision's ``conv1`` / ``layerN`` / ``fc``; MobileNet-V1's
blocks by resolution, Howard et al. 2017 Table 1), and the stages run in forward order (seen by
forward hooks on a thin model)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from assembled_lightning.models import MobileNetConfig, create_model, get_model_entry, list_models

RESNET_STAGES = ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
MOBILENET_STAGES = ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
# MobileNet-V1's 13 blocks at 112, 56, 28, 14 and 7 pixels (224 input): blocks 1, 3, 5 and 11
# stride.
MOBILENET_BLOCK_STAGE = {
    0: "stem",
    **dict.fromkeys((1, 2), "stage1"),
    **dict.fromkeys((3, 4), "stage2"),
    **dict.fromkeys(range(5, 11), "stage3"),
    11: "stage4",
    12: "stage4",
}


def is_mobilenet(name: str) -> bool:
    return isinstance(get_model_entry(name).config, MobileNetConfig)


def expected_stage(model_name: str, parameter_name: str) -> str:
    """The stage a parameter's name puts it in, written out by hand per family."""
    first, *rest = parameter_name.split(".")
    if first == "fc":
        return "head"
    if is_mobilenet(model_name):
        return MOBILENET_BLOCK_STAGE[int(rest[0])] if first == "blocks" else "stem"
    return first if first.startswith("layer") else "stem"  # conv1, bn1, stem_pool


def stage_of_parameters(model: nn.Module) -> dict[str, list[str]]:
    """parameter name -> every stage whose modules own it (one, if the grouping is right)."""
    owners: dict[str, list[str]] = {name: [] for name, _ in model.named_parameters()}
    by_id = {id(p): name for name, p in model.named_parameters()}
    for stage, module_names in model.parameter_stages():  # type: ignore[operator]
        for module_name in module_names:
            for parameter in model.get_submodule(module_name).parameters():
                owners[by_id[id(parameter)]].append(stage)
    return owners


@pytest.mark.parametrize("name", list_models())
def test_every_parameter_is_in_exactly_one_stage(name: str) -> None:
    with torch.device("meta"):  # full size, no memory or init cost
        model = create_model(name, num_classes=10)
    stages = [stage for stage, _ in model.parameter_stages()]  # type: ignore[operator]
    assert stages == (MOBILENET_STAGES if is_mobilenet(name) else RESNET_STAGES)
    owners = stage_of_parameters(model)
    assert owners  # a model with parameters
    for parameter_name, found in owners.items():
        assert found == [expected_stage(name, parameter_name)], parameter_name


def test_a_model_without_classifier_has_an_empty_head() -> None:
    model = create_model("resnet50d_sk_bl", num_classes=0, base_width=8)
    owners = stage_of_parameters(model)
    assert all(len(found) == 1 and found[0] != "head" for found in owners.values())


THIN: list[tuple[str, dict[str, Any]]] = [
    ("resnet18", {"base_width": 8, "block_counts": (1, 1, 1, 1)}),
    ("assemble_resnet50", {"base_width": 8, "block_counts": (2, 2, 2, 1)}),  # BL, SK, deep stem
    ("se_mobilenet_v1", {"width_multiplier": 0.25}),
]


@pytest.mark.parametrize(("name", "overrides"), THIN, ids=[name for name, _ in THIN])
def test_stages_run_in_forward_order(name: str, overrides: dict[str, Any]) -> None:
    """Forward hooks on every module that owns parameters: the stage of each call, in the
    order of the calls, never goes back to an earlier stage and visits all of them."""
    model = create_model(name, num_classes=3, **overrides).eval()
    stages = [stage for stage, _ in model.parameter_stages()]  # type: ignore[operator]
    owners = stage_of_parameters(model)
    calls: list[int] = []
    for module_name, module in model.named_modules():
        own = [f"{module_name}.{p}" for p, _ in module.named_parameters(recurse=False)]
        if own:
            stage = stages.index(owners[own[0]][0])
            module.register_forward_hook(lambda *_, stage=stage: calls.append(stage))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert calls == sorted(calls)
    assert sorted(set(calls)) == list(range(len(stages)))
