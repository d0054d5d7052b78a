"""Multi-scale features (``features_only``, ``out_indices``, ``feature_info``,
``forward_intermediates``) against independent references: forward hooks on the ordinary model,
torchvision's ``IntermediateLayerGetter`` and ``create_feature_extractor``, the maps' real
shapes, and timm's ResNet and MobileNet-V1 (their ``feature_info`` and ``forward_intermediates``
on the same weights)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest
import torch
from eager_outputs import randomise_batch_norms, thin_model
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.ops import FeaturePyramidNetwork

from assembled_lightning.models import (
    MobileNetConfig,
    MultiScaleFeatures,
    create_model,
    fuse_for_inference,
    get_model_entry,
    list_models,
)

RESNET_MAPS = ("relu", "layer1", "layer2", "layer3", "layer4")
MOBILENET_MAPS = ("blocks.0", "blocks.2", "blocks.4", "blocks.10", "blocks.12")
"""The last block at each resolution (the next one strides): 2, 4, 8, 16, 32."""


def is_mobilenet(name: str) -> bool:
    return isinstance(get_model_entry(name).config, MobileNetConfig)


def thin_overrides(name: str) -> dict[str, Any]:
    """Those of ``eager_outputs.thin_model``, for building the features-only twin."""
    if is_mobilenet(name):
        return {"width_multiplier": 0.25}
    return {"base_width": 8, "block_counts": (2, 2, 2, 2)}


def map_names(name: str) -> tuple[str, ...]:
    return MOBILENET_MAPS if is_mobilenet(name) else RESNET_MAPS


def images(side: int = 64) -> torch.Tensor:
    return torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def hooked_maps(model: nn.Module, names: tuple[str, ...], x: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of the named modules during an ordinary forward (copied at once, so a later
    in-place op cannot change them)."""
    captured: dict[str, torch.Tensor] = {}
    handles = [
        model.get_submodule(n).register_forward_hook(
            lambda _m, _i, out, n=n: captured.__setitem__(n, out.clone())
        )
        for n in names
    ]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return [captured[n] for n in names]


def assert_all_equal(
    actual: list[torch.Tensor], expected: list[torch.Tensor], atol: float = 1e-6
) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=0, atol=atol)


@pytest.mark.parametrize("name", list_models())
def test_features_only_gives_the_hooked_maps_and_loads_the_classifier_weights(name: str) -> None:
    model = thin_model(name).eval()  # random BN statistics and γ: every branch counts
    x = images()
    expected = hooked_maps(model, map_names(name), x)
    assert expected[-1].std() > 0.01

    features = create_model(name, features_only=True, **thin_overrides(name))
    assert isinstance(features, MultiScaleFeatures)
    result = features.model.load_state_dict(model.state_dict(), strict=False)
    assert not result.missing_keys
    assert all(key.startswith("fc.") for key in result.unexpected_keys)
    with torch.no_grad():
        maps = features.eval()(x)
    assert_all_equal(maps, expected)
    assert features.feature_info.module_name() == list(map_names(name))
    assert features.feature_info.channels() == [m.shape[1] for m in maps]
    assert features.feature_info.reduction() == [x.shape[-1] // m.shape[-1] for m in maps]


@pytest.mark.parametrize("name", list_models())
def test_torchvision_feature_extractors_give_the_hooked_maps(name: str) -> None:
    """They run the model's child modules, so the stem ReLU must be one (it was a function)."""
    model = thin_model(name).eval()
    x = images()
    names = map_names(name)
    expected = hooked_maps(model, names, x)

    extractor = create_feature_extractor(model, return_nodes=list(names))
    with torch.no_grad():
        assert_all_equal(list(extractor(x).values()), expected)
        if is_mobilenet(name):  # its maps are inside `blocks`; the getter sees the last one
            getter = IntermediateLayerGetter(model, return_layers={"blocks": "out"})
            assert_all_equal([getter(x)["out"]], expected[-1:])
        else:
            getter = IntermediateLayerGetter(model, return_layers={n: n for n in names})
            assert_all_equal(list(getter(x).values()), expected)


@pytest.mark.parametrize("name", list_models())
def test_forward_intermediates_follows_timms_semantics(name: str) -> None:
    model = thin_model(name).eval()
    x = images()
    expected = hooked_maps(model, map_names(name), x)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x), rtol=0, atol=0)
        assert_all_equal(maps, expected)
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert_all_equal(last_two, expected[-2:])
        final, maps = model.forward_intermediates(x, indices=(0, -4), stop_early=True)
        assert_all_equal([final, *maps], [expected[1], *expected[:2]])
    with pytest.raises(ValueError, match="NCHW"):
        model.forward_intermediates(x, output_fmt="NHWC")


@pytest.mark.parametrize("name", list_models())
def test_feature_info_gives_the_shapes_of_the_full_size_maps(name: str) -> None:
    """Every registered model at its real width, on the meta device (shapes only, no compute);
    a non-square input catches swapped sides."""
    with torch.device("meta"):
        model = create_model(name)
        height = get_model_entry(name).input_size
        x = torch.empty(2, 3, height, height + 64)
        _, maps = model.forward_intermediates(x)
    info = model.feature_info
    assert len(info) == len(maps) == 5
    assert info.out_indices == (0, 1, 2, 3, 4)
    for entry, feature_map in zip(info, maps, strict=True):
        r = entry["reduction"]
        assert feature_map.shape == (2, entry["num_chs"], height // r, (height + 64) // r)
    assert info.channels()[-1] == model.num_features


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("resnet18", "resnet18"),
        ("resnet50", "resnet50"),
        ("resnet50d", "resnet50d"),
        ("resnet152", "resnet152"),
        ("mobilenet_v1", "mobilenetv1_100"),
    ],
)
def test_feature_info_is_timms(ours: str, theirs: str) -> None:
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        reference = timm.create_model(theirs, features_only=True).feature_info
        info = create_model(ours, features_only=True).feature_info
    assert info.channels() == reference.channels()
    assert info.reduction() == reference.reduction()


def test_big_little_maps_follow_the_originals_strides() -> None:
    """BigLittleNet's stem module and layer1 both stride, layer3 does not (stage strides
    (2, 2, 1, 2), ``ResNetConfig.stage_strides``)."""
    with torch.device("meta"):
        info = create_model("assemble_resnet50").feature_info
    assert info.reduction() == [2, 8, 16, 16, 32]
    assert info.channels() == [64, 256, 512, 1024, 2048]


def test_forward_intermediates_equals_timms_on_the_same_weights() -> None:
    """A thin timm ResNet-50-D's state dict loads strictly into ours, and every call form of
    ``forward_intermediates`` gives timm's results (the deep stem: timm's 7×7 stem is 64 wide
    whatever the stage widths)."""
    pytest.importorskip("timm")
    from timm.models.resnet import Bottleneck, ResNet

    torch.manual_seed(0)
    reference = ResNet(
        Bottleneck,
        [2, 2, 2, 2],
        stem_type="deep",
        stem_width=4,
        avg_down=True,
        channels=(8, 16, 32, 64),
    )
    randomise_batch_norms(reference)
    ours = create_model("resnet50d", base_width=8, stem_width=4, block_counts=(2, 2, 2, 2))
    ours.load_state_dict(reference.state_dict(), strict=True)
    reference.eval()
    ours.eval()
    x = images()
    calls: list[dict[str, Any]] = [
        {},
        {"indices": 3},
        {"indices": [1, -1], "stop_early": True},
        {"indices": [0, 2], "stop_early": True},
    ]
    with torch.no_grad():
        for call in calls:
            final, maps = ours.forward_intermediates(x, **call)
            expected_final, expected_maps = reference.forward_intermediates(x, **call)
            assert_all_equal([final, *maps], [expected_final, *expected_maps])
        assert_all_equal(
            ours.forward_intermediates(x, indices=[0, 2], intermediates_only=True),
            reference.forward_intermediates(x, indices=[0, 2], intermediates_only=True),
        )


def test_create_feature_extractor_traces_the_tf_same_stem_pool() -> None:
    """Converted vanilla checkpoints use TF 'SAME' pooling, whose pads depend on the map size."""
    model = create_model(
        "resnet50", base_width=8, block_counts=(1, 1, 1, 1), stem_pool_padding="tf_same"
    ).eval()
    randomise_batch_norms(model)
    extractor = create_feature_extractor(model, return_nodes=list(RESNET_MAPS))
    for side in (64, 66):  # pads (0, 1), then (1, 1): computed per input, not traced constants
        x = images(side)
        with torch.no_grad():
            assert_all_equal(list(extractor(x).values()), hooked_maps(model, RESNET_MAPS, x))


def test_out_indices_select_maps_and_unused_stages_neither_run_nor_hold_parameters() -> None:
    model = thin_model("assemble_resnet50")
    x = images()
    expected = hooked_maps(model.eval(), RESNET_MAPS, x)
    features = create_model(
        "assemble_resnet50",
        features_only=True,
        out_indices=(1, -3),
        base_width=8,
        block_counts=(2, 2, 2, 2),
    )
    assert isinstance(features, MultiScaleFeatures)
    features.model.load_state_dict(model.state_dict(), strict=False)
    assert features.out_indices == (1, 2)
    assert features.feature_info.channels() == [32, 64]
    assert features.feature_info.reduction() == [8, 16]
    prefixes = ("model.layer3.", "model.layer4.", "model.fc.")
    assert not [n for n, _ in features.named_parameters() if n.startswith(prefixes)]
    ran: list[str] = []
    for n in ("layer3", "layer4", "fc"):
        features.model.get_submodule(n).register_forward_pre_hook(lambda *_, n=n: ran.append(n))
    with torch.no_grad():
        assert_all_equal(features.eval()(x), expected[1:3])
    assert not ran

    # Every parameter left takes part in the loss: no unused-parameter error under DDP.
    maps = features.train()(torch.randn(2, 3, 64, 64))
    sum(m.square().mean() for m in maps).backward()
    assert all(p.grad is not None for p in features.parameters())


def test_an_int_selects_the_last_maps_as_timm() -> None:
    features = create_model(
        "mobilenet_v1", features_only=True, out_indices=2, width_multiplier=0.25
    )
    assert isinstance(features, MultiScaleFeatures)
    assert features.out_indices == (3, 4)
    assert features.feature_info.module_name() == ["blocks.10", "blocks.12"]
    assert [m.shape[1] for m in features(images())] == features.feature_info.channels()


@pytest.mark.parametrize(
    "out_indices", [(5,), (-6,), (0, 7), (2, 1), (1, 1), (), 0, 6, (1.0,), "12", True]
)
def test_bad_out_indices_raise_and_name_the_valid_range(out_indices: Any) -> None:
    with pytest.raises(ValueError, match=r"0\.\.4|1\.\.5"):
        create_model("resnet18", features_only=True, out_indices=out_indices, base_width=8)


def test_out_indices_need_features_only_and_bad_indices_fail_in_forward_intermediates() -> None:
    with pytest.raises(TypeError, match="features_only=True"):
        create_model("resnet18", out_indices=(1, 2))
    model = create_model("resnet18", base_width=8)
    with pytest.raises(ValueError, match=r"0\.\.4"):
        model.forward_intermediates(images(), indices=[5])


@pytest.mark.parametrize("name", ["resnet50", "assemble_resnet50"])
def test_torchvision_backbone_with_fpn_runs_on_the_feature_info(name: str) -> None:
    model = thin_model(name)
    info = model.feature_info
    names, channels = info.module_name()[1:], info.channels()[1:]
    fpn = BackboneWithFPN(
        model, {n: str(i) for i, n in enumerate(names)}, channels, out_channels=16
    ).eval()
    x = images()
    with torch.no_grad():
        pyramid = fpn(x)
    assert list(pyramid) == ["0", "1", "2", "3", "pool"]
    for level, reduction in zip(pyramid.values(), info.reduction()[1:], strict=False):
        assert level.shape == (1, 16, 64 // reduction, 64 // reduction)


def test_torchvision_fpn_runs_on_mobilenet_features() -> None:
    """MobileNet's maps are inside ``blocks``, out of the getter's reach: FPN on our list."""
    features = create_model(
        "se_mobilenet_v1", features_only=True, out_indices=(2, 3, 4), width_multiplier=0.25
    ).eval()
    fpn = FeaturePyramidNetwork(features.feature_info.channels(), 16).eval()
    with torch.no_grad():
        pyramid = fpn(OrderedDict(enumerate(features(images()))))
    assert [tuple(level.shape) for level in pyramid.values()] == [
        (1, 16, 8, 8),
        (1, 16, 4, 4),
        (1, 16, 2, 2),
    ]


def test_features_fuse_and_export_with_the_same_maps() -> None:
    model = thin_model("assemble_resnet50")
    features = create_model(
        "assemble_resnet50", features_only=True, base_width=8, block_counts=(2, 2, 2, 2)
    )
    features.model.load_state_dict(model.state_dict(), strict=False)
    features.eval()
    x = images()
    with torch.no_grad():
        expected = features(x)
        assert_all_equal(fuse_for_inference(features)(x), expected, atol=1e-5)  # as test_fuse
        exported = torch.export.export(features, (x,)).module()
        assert_all_equal(exported(x), expected)
