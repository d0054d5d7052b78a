"""Config dataclasses refuse what they would otherwise silently misread (issue #10, item 5).

A typo in a string switch used to build another network (``stem="Deep"`` → the 7×7 stem,
``selective_kernel="3x3"`` → the 3×3+5×5 pair, ``init="kaiming"`` → PyTorch's defaults) and an
out-of-range number built a network that trains to NaN. Both config families share one
validator; these tests check it against the allowed values spelled out by hand here, not read
back from the validator.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest

from assembled_lightning import MobileNetConfig, ResNetConfig, create_model

# Every string switch and its allowed values, written out from the docs (not from the code).
ALLOWED = {
    (ResNetConfig, "stem"): {"conv7", "deep"},
    (ResNetConfig, "stem_pool_padding"): {"symmetric", "tf_same"},
    (ResNetConfig, "shortcut"): {"conv", "avg2", "avg3"},
    (ResNetConfig, "selective_kernel"): {"none", "3x3_2x", "3x3_5x5"},
    (ResNetConfig, "init"): {"tf", "torchvision"},
    (MobileNetConfig, "init"): {"tf", "torchvision"},
}


@pytest.mark.parametrize(
    ("config_class", "field", "typo"),
    [
        (ResNetConfig, "stem", "Deep"),
        (ResNetConfig, "selective_kernel", "3x3"),
        (ResNetConfig, "init", "kaiming"),
        (ResNetConfig, "shortcut", "avg"),
        (ResNetConfig, "stem_pool_padding", "same"),
        (MobileNetConfig, "init", "kaiming"),
    ],
)
def test_a_typo_in_a_string_switch_names_the_value_and_the_allowed_ones(
    config_class: type, field: str, typo: str
) -> None:
    with pytest.raises(ValueError) as info:
        config_class(**{field: typo})
    message = str(info.value)
    assert f"{field}" in message and repr(typo) in message
    for allowed in ALLOWED[(config_class, field)]:
        assert repr(allowed) in message


def test_a_case_typo_suggests_the_intended_value() -> None:
    with pytest.raises(ValueError, match=r"did you mean 'deep'"):
        ResNetConfig(stem="Deep")  # type: ignore[arg-type]


def test_typos_are_caught_through_create_model_and_replace() -> None:
    with pytest.raises(ValueError, match=r"selective_kernel.*'3x3'"):
        create_model("resnet50d", selective_kernel="3x3")
    with pytest.raises(ValueError, match=r"anti_alias.*'Sconv'"):
        ResNetConfig().replace(anti_alias=("Sconv",))
    with pytest.raises(ValueError, match=r"init.*'kaiming'"):
        create_model("mobilenet_v1", init="kaiming")


def test_every_literal_field_is_covered() -> None:
    """The hand-written table above lists every single-string switch of both families."""
    found = set()
    for config_class in (ResNetConfig, MobileNetConfig):
        hints = typing.get_type_hints(config_class)
        for field in dataclasses.fields(config_class):
            if typing.get_origin(hints[field.name]) is typing.Literal:
                found.add((config_class, field.name))
    assert found == set(ALLOWED)


@pytest.mark.parametrize(
    ("config_class", "changes", "message"),
    [
        (ResNetConfig, {"bn_eps": -1.0}, r"bn_eps must be .*> 0.*-1"),
        (ResNetConfig, {"bn_eps": 0.0}, r"bn_eps"),
        (ResNetConfig, {"bn_eps": float("nan")}, r"bn_eps"),
        (ResNetConfig, {"base_width": 0}, r"base_width"),
        (ResNetConfig, {"in_channels": 0}, r"in_channels"),
        (ResNetConfig, {"stem_width": -8}, r"stem_width"),
        (ResNetConfig, {"sk_reduction": 0}, r"sk_reduction"),
        (ResNetConfig, {"sk_min_dim": 0}, r"sk_min_dim"),
        (ResNetConfig, {"dropblock_size": 0}, r"dropblock_size"),
        (ResNetConfig, {"dropblock_gamma_scales": (0.0, 0.0, -0.25, 1.0)}, r"gamma_scales"),
        (ResNetConfig, {"dropblock_gamma_scales": (0.0, 1.0)}, r"gamma_scales"),
        (ResNetConfig, {"depth": "50"}, r"depth"),
        (ResNetConfig, {"base_width": 8.5}, r"base_width.*int"),
        (ResNetConfig, {"dropblock": "false"}, r"dropblock.*'false'"),
        (ResNetConfig, {"anti_alias": "sconv"}, r"anti_alias.*tuple"),
        (MobileNetConfig, {"bn_eps": -1.0}, r"bn_eps must be .*> 0"),
        (MobileNetConfig, {"bn_momentum": 0.997}, r"decay"),
        (MobileNetConfig, {"dropblock_size": 0}, r"dropblock_size"),
        (MobileNetConfig, {"in_channels": 0}, r"in_channels"),
        (MobileNetConfig, {"dropblock_gamma_scales": (0.25, -1.0)}, r"gamma_scales"),
        (MobileNetConfig, {"width_multiplier": float("inf")}, r"width_multiplier"),
    ],
)
def test_out_of_range_and_mistyped_values_are_refused(
    config_class: type, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        config_class(**changes)


def test_error_names_the_config_class() -> None:
    with pytest.raises(ValueError, match=r"MobileNetConfig\.bn_eps"):
        MobileNetConfig(bn_eps=-1.0)
    with pytest.raises(ValueError, match=r"ResNetConfig\.bn_eps"):
        ResNetConfig(bn_eps=-1.0)


def test_valid_values_and_lists_from_yaml_still_build() -> None:
    config = ResNetConfig(anti_alias=["sconv"], block_counts=[1, 1, 1, 1])  # type: ignore[arg-type]
    assert config.anti_alias == ("sconv",) and config.block_counts == (1, 1, 1, 1)
    assert hash(config) == hash(ResNetConfig(anti_alias=("sconv",), block_counts=(1, 1, 1, 1)))
    assert ResNetConfig(bn_momentum=0, se_reduction=None, dropblock_gamma_scales=(0, 0, 1, 1))
    assert MobileNetConfig(width_multiplier=1, dropblock_gamma_scales=[0.25, 1.0])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# The training task's optimiser arguments (ClassificationTask.__init__ validates them before it
# builds the model; this file holds the test because tests/tasks/ belongs to another change).


@pytest.mark.parametrize(
    ("argument", "value"),
    [("weight_decay", -1e-4), ("warmup_epochs", -1.0), ("base_lr", -0.1)],
)
def test_negative_optimiser_arguments_are_refused_with_our_message(
    argument: str, value: float
) -> None:
    from assembled_lightning.tasks import ClassificationTask

    arguments: dict[str, Any] = {argument: value}
    with pytest.raises(ValueError, match=rf"{argument} must be >= 0, got {value}"):
        ClassificationTask(model="resnet18", num_classes=4, **arguments)
