"""The model registry: every paper row builds and trains a step; bad input fails clearly;
the timm-style API (features, head, classifier reset), zero-γ and DropBlock placement."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from assembled_lightning.models import (
    BlurPool2d,
    DropBlock2d,
    MobileNetConfig,
    ResNetConfig,
    create_model,
    get_model_entry,
    list_models,
)
from assembled_lightning.models.blocks import BasicBlock, Bottleneck

PAPER_ROWS = [
    "resnet50",
    "resnet50d",
    "resnet50d_se",
    "resnet50d_se_dropblock",
    "resnet50d_sk",
    "resnet50d_sk_bl",
    "assemble_resnet50",
    "assemble_resnet152",
    *(f"resnet50d_c{i}" for i in range(1, 6)),
    *(f"resnet50d_sk_a{i}" for i in range(1, 5)),
    "resnet50d_sk_proj",
    "mobilenet_v1",
    "se_mobilenet_v1",
]


def thin_overrides(name: str) -> dict[str, Any]:
    """The cheapest valid member of a registered variant's family."""
    config = get_model_entry(name).config
    if isinstance(config, MobileNetConfig):
        return {"width_multiplier": 0.25}
    assert isinstance(config, ResNetConfig)
    blocks = (2, 2, 2, 1) if config.big_little else (1, 1, 1, 1)
    return {"base_width": 8, "block_counts": blocks}


def thin(name: str, num_classes: int = 10, **overrides: Any) -> nn.Module:
    return create_model(name, num_classes=num_classes, **{**thin_overrides(name), **overrides})


def smallest_input_side(name: str) -> int:
    """32 px for every variant except a 5-tap blur: reflect padding of 2 needs a map side > 2,
    so the stage-4 blur needs a 4-px map, i.e. a 64-px input."""
    config = get_model_entry(name).config
    if isinstance(config, ResNetConfig) and config.anti_alias and config.anti_alias_filter_size > 3:
        return 64
    return 32


def random_input(side: int | tuple[int, int], batch: int = 2) -> torch.Tensor:
    h, w = (side, side) if isinstance(side, int) else side
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(0))


# --------------------------------------------------------------------------------------------
# The registry's contents


def test_registry_lists_the_paper_rows() -> None:
    names = list_models()
    assert names == sorted(names)
    missing = set(PAPER_ROWS) - set(names)
    assert not missing
    assert list_models("resnet50d_sk_a*") == [f"resnet50d_sk_a{i}" for i in range(1, 5)]
    assert list_models("assemble_*") == ["assemble_resnet152", "assemble_resnet50"]


@pytest.mark.parametrize("name", list_models())
def test_every_entry_names_its_paper_table(name: str) -> None:
    entry = get_model_entry(name)
    assert entry.name == name
    assert entry.description.strip()
    assert "Table" in entry.description


def test_registered_rows_set_the_paper_switches() -> None:
    """A few rows whose contents the spec fixes (ORIGINAL.md §1.0, §1.5)."""
    r50 = get_model_entry("assemble_resnet50").config
    assert isinstance(r50, ResNetConfig)
    assert (r50.depth, r50.big_little, r50.bl_alpha, r50.bl_beta) == (50, True, 2, 4)
    assert (r50.stem, r50.shortcut, r50.selective_kernel) == ("conv7", "avg3", "3x3_2x")
    assert (r50.anti_alias, r50.anti_alias_filter_size, r50.dropblock) == (("sconv",), 3, True)
    r152 = get_model_entry("assemble_resnet152").config
    assert isinstance(r152, ResNetConfig)
    assert (r152.depth, r152.bl_alpha, r152.bl_beta) == (152, 1, 2)
    assert r152.stage_blocks == (5, 12, 30, 3)
    r50d = get_model_entry("resnet50d").config
    assert isinstance(r50d, ResNetConfig)
    assert (r50d.stem, r50d.shortcut, r50d.big_little) == ("deep", "avg2", False)
    # BigLittleNet rows are evaluated at 256 px (Table 7), a multiple of 32.
    for name in list_models():
        entry = get_model_entry(name)
        big_little = getattr(entry.config, "big_little", False)
        assert entry.input_size == (256 if big_little else 224), name


def test_e4_and_e5_differ_by_dropblock_only() -> None:
    """Table 7: E4 = R50D + SE with LS + mixup, E5 = the same with DropBlock added."""
    e4 = get_model_entry("resnet50d_se").config
    e5 = get_model_entry("resnet50d_se_dropblock").config
    assert isinstance(e4, ResNetConfig) and isinstance(e5, ResNetConfig)
    assert "E4" in get_model_entry("resnet50d_se").description
    assert "E5" in get_model_entry("resnet50d_se_dropblock").description
    assert (e4.dropblock, e5.dropblock, e5.se_reduction) == (False, True, 16)
    assert e5 == e4.replace(dropblock=True)
    model = create_model("resnet50d_se_dropblock", base_width=8)
    assert dropblock_scales(model) == {"layer3": {0.25}, "layer4": {1.0}}  # §1.7


def test_anti_alias_rows_say_which_places_the_original_implements() -> None:
    """master:nets/resnet_model.py reads only 'sconv' (after the strided 3×3) and 'proj'
    (blur before the strided 1×1 of the plain projection shortcut); 'max' is never read."""
    for name in list_models("resnet50d_sk_a*"):
        config = get_model_entry(name).config
        assert isinstance(config, ResNetConfig)
        says_not_original = "not in the original" in get_model_entry(name).description
        assert says_not_original == ("max" in config.anti_alias), name
    proj = get_model_entry("resnet50d_sk_proj").config
    assert isinstance(proj, ResNetConfig)
    assert (proj.anti_alias, proj.shortcut, proj.anti_alias_filter_size) == (("proj",), "conv", 3)
    model = create_model("resnet50d_sk_proj", base_width=8, block_counts=[1, 1, 1, 1])
    blurs = [n for n, m in model.named_modules() if isinstance(m, BlurPool2d)]
    assert blurs == [f"layer{i}.0.downsample.0" for i in (2, 3, 4)]  # the strided stages
    for name in blurs:
        shortcut = model.get_submodule(name.rsplit(".", 1)[0])
        blur, conv = shortcut[0], shortcut[1]
        assert (blur.filter_size, blur.stride) == (3, 2)
        assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.stride == (1, 1)


def test_overrides_accept_lists_and_a_single_anti_alias_place() -> None:
    model = create_model(
        "resnet50d_sk", num_classes=10, base_width=8, block_counts=[1, 1, 1, 1], anti_alias="sconv"
    )
    assert model.config.block_counts == (1, 1, 1, 1)
    assert model.config.anti_alias == ("sconv",)
    assert sum(isinstance(m, BlurPool2d) for m in model.modules()) == 3


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("assemble_resnet50", [(2, 1, 1), (3, 1, 1), (5, 1, 1)]),
        ("assemble_resnet152", [(4, 1, 1), (11, 5, 1), (29, 14, 1)]),
    ],
)
def test_big_little_block_counts_are_the_originals(
    name: str, expected: list[tuple[int, int, int]]
) -> None:
    """big / little / merge blocks of stages 1-3 and 3 plain blocks in stage 4 (§1.5)."""
    with torch.device("meta"):
        model = create_model(name, num_classes=1001)
    stages = [model.layer1, model.layer2, model.layer3]
    assert [(len(s.big), len(s.little), len(s.merge)) for s in stages] == expected
    assert len(model.layer4) == 3
    assert model.num_features == 2048


def test_assemble_resnet50_blurs_where_the_original_does() -> None:
    """Six blur-pools, on the 56, 56, 28, 28, 14, 14 px maps of a 224-px input (§1.4)."""
    model = create_model("assemble_resnet50", num_classes=1001, base_width=8).eval()
    sizes: list[int] = []
    for module in model.modules():
        if isinstance(module, BlurPool2d):
            assert module.filter_size == 3 and module.stride == 2
            module.register_forward_hook(lambda _m, inputs, _o: sizes.append(inputs[0].shape[-1]))
    with torch.no_grad():
        features = model.forward_features(random_input(224, batch=1))
    assert sorted(sizes, reverse=True) == [56, 56, 28, 28, 14, 14]
    assert features.shape[-2:] == (7, 7)


# --------------------------------------------------------------------------------------------
# Every variant trains a step


@pytest.mark.parametrize("name", list_models())
def test_every_model_runs_forward_and_backward_on_a_small_input(name: str) -> None:
    torch.manual_seed(0)
    model = thin(name).train()
    config = get_model_entry(name).config
    n_dropblocks = model.set_dropblock_keep_prob(0.9)
    if config.dropblock:
        assert n_dropblocks > 0
        assert all(m.active for m in model.modules() if isinstance(m, DropBlock2d))
    else:
        assert n_dropblocks == 0

    x = random_input(smallest_input_side(name))
    logits = model(x)
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([1, 7])).backward()

    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    grad = first_conv.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    unused = [k for k, p in model.named_parameters() if p.grad is None]
    assert not unused  # every parameter takes part in the forward pass

    if n_dropblocks:
        # DropBlock really acts: two train-mode passes differ, two eval-mode passes do not.
        with torch.no_grad():
            assert not torch.equal(model(x), model(x))
            model.eval()
            assert torch.equal(model(x), model(x))


def test_a_five_tap_blur_needs_a_64_px_input() -> None:
    """Documents why the 5-tap row runs at 64 px above (a PyTorch reflect-pad limit)."""
    model = thin("resnet50d_sk_a3").eval()
    with pytest.raises(RuntimeError, match=r"[Pp]adding"):
        model(random_input(32))


# --------------------------------------------------------------------------------------------
# Clear errors


def test_unknown_model_name_lists_the_registered_names() -> None:
    with pytest.raises(ValueError, match="unknown model") as info:
        create_model("assemble_resnet5O")
    for name in list_models():
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("name", "allowed"),
    [("resnet50", "base_width"), ("assemble_resnet50", "dropblock"), ("mobilenet_v1", "width")],
)
def test_unknown_override_field_names_the_allowed_fields(name: str, allowed: str) -> None:
    with pytest.raises(TypeError, match="widht") as info:
        create_model(name, widht=8)
    assert allowed in str(info.value) and "num_classes" in str(info.value)


@pytest.mark.parametrize("shape", [(48, 48), (64, 48), (48, 64)])
def test_big_little_input_must_be_divisible_by_32(shape: tuple[int, int]) -> None:
    model = thin("assemble_resnet50").eval()
    with pytest.raises(ValueError, match="divisible by 32"):
        model(random_input(shape))


def test_non_big_little_models_accept_any_input_side() -> None:
    model = thin("resnet50d_sk").eval()
    with torch.no_grad():
        assert model(random_input(48)).shape == (2, 10)


def test_wrong_channel_count_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        thin("resnet50").eval()(torch.randn(1, 1, 32, 32))


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("resnet18", {"selective_kernel": "3x3_2x"}, "bottleneck"),
        ("resnet18", {"big_little": True, "shortcut": "avg3"}, "bottleneck"),
        ("resnet50", {"anti_alias_filter_size": 9}, r"2\.\.7"),
        ("resnet50", {"big_little": True}, "avg3"),  # big_little with shortcut 'conv'
        ("resnet50", {"shortcut": "avg2", "anti_alias": ("proj",)}, "proj"),
        ("resnet50", {"num_classes": -1}, "num_classes"),
        ("resnet50", {"depth": 77}, "depth"),
        ("resnet50", {"anti_alias": ("everywhere",)}, "anti_alias"),
        ("resnet50", {"base_width": 9, "bl_alpha": 2}, "multiple of bl_alpha"),
        ("resnet50", {"block_counts": (1, 1, 1)}, "four counts"),
        ("assemble_resnet50", {"block_counts": (1, 2, 2, 1)}, ">= 2 blocks"),
        ("assemble_resnet50", {"anti_alias": ("max",)}, "max-pool"),
        ("resnet50", {"bn_momentum": 0.997}, "decay"),
        ("mobilenet_v1", {"width_multiplier": 0.0}, "width_multiplier"),
        ("mobilenet_v1", {"num_classes": -1}, "num_classes"),
    ],
)
def test_invalid_configurations_raise_value_error(
    name: str, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        create_model(name, **overrides)


# --------------------------------------------------------------------------------------------
# The timm-style API


@pytest.mark.parametrize(
    ("name", "num_features"),
    [("assemble_resnet50", 256), ("resnet50d_sk", 256), ("resnet18", 64), ("mobilenet_v1", 256)],
)
def test_forward_features_and_head_shapes(name: str, num_features: int) -> None:
    model = thin(name).eval()
    assert model.num_features == num_features
    x = random_input((64, 96))
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, num_features, 64 // 32, 96 // 32)
        pooled = model.forward_head(features, pre_logits=True)
        assert pooled.shape == (2, num_features)
        assert torch.allclose(pooled, features.mean(dim=(2, 3)))
        logits = model.forward_head(features)
        assert torch.allclose(logits, model.get_classifier()(pooled))
        assert torch.allclose(model(x), logits)


def test_reset_classifier_changes_only_the_head() -> None:
    model = thin("assemble_resnet50", num_classes=1001).eval()
    x = random_input(64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config_before = model.config
    with torch.no_grad():
        features = model.forward_head(model.forward_features(x), pre_logits=True)

    model.reset_classifier(10)
    assert isinstance(model.fc, nn.Linear)
    assert (model.fc.in_features, model.fc.out_features) == (256, 10)
    assert model.config == config_before.replace(num_classes=10)
    after = model.state_dict()
    assert set(after) == set(before)
    for key, value in before.items():
        if not key.startswith("fc."):
            assert torch.equal(after[key], value), key
    assert after["fc.weight"].shape == (10, 256)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        assert torch.allclose(model.forward_head(model.forward_features(x), True), features)

    model.reset_classifier(0)
    with torch.no_grad():
        assert torch.allclose(model(x), features)


def test_num_classes_zero_gives_the_pooled_features() -> None:
    classifier = thin("resnet50d_sk", num_classes=10).eval()
    backbone = thin("resnet50d_sk", num_classes=0).eval()
    assert isinstance(backbone.get_classifier(), nn.Identity)
    assert not [k for k in backbone.state_dict() if k.startswith("fc.")]
    state = {k: v for k, v in classifier.state_dict().items() if not k.startswith("fc.")}
    backbone.load_state_dict(state, strict=True)
    x = random_input(64)
    with torch.no_grad():
        expected = classifier.forward_head(classifier.forward_features(x), pre_logits=True)
        assert torch.allclose(backbone(x), expected)
        assert backbone(x).shape == (2, 256)


# --------------------------------------------------------------------------------------------
# Initialisation: zero-γ and the original's initialisers


@pytest.mark.parametrize("zero_gamma", [True, False])
def test_zero_gamma_sets_each_residual_branch_last_bn(zero_gamma: bool) -> None:
    model = thin("assemble_resnet50", zero_gamma=zero_gamma)
    bottlenecks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(bottlenecks) == 10  # 3 stages × (big 1 + little 1 + merge 1) + stage 4
    expected = 0.0 if zero_gamma else 1.0
    last_bns = set()
    for block in bottlenecks:
        assert torch.all(block.bn3.weight == expected)
        last_bns.add(id(block.bn3))
    # Every other BN (stem, bn1, SK, shortcuts, little_e) keeps γ = 1.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d) and id(module) not in last_bns:
            assert torch.all(module.weight == 1.0)


def test_zero_gamma_on_basic_blocks_zeroes_bn2() -> None:
    model = thin("resnet18")
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert blocks
    for block in blocks:
        assert torch.all(block.bn2.weight == 0.0) and torch.all(block.bn1.weight == 1.0)


def test_tf_initialisers_and_batch_norm_settings() -> None:
    """Convs: fan-in truncated normal with scale 1 (std sqrt(1/fan_in), cut at ±2 of the
    untruncated std); dense: Glorot-uniform, zero bias; BN eps 1e-5, momentum 1 − 0.997."""
    torch.manual_seed(0)
    model = create_model("resnet50d", num_classes=1001, base_width=16)
    normalised = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.weight[0].numel()
            normalised.append(module.weight.detach().flatten() * math.sqrt(fan_in))
        elif isinstance(module, nn.BatchNorm2d):
            assert module.eps == 1e-5 and module.momentum == pytest.approx(0.003)
    values = torch.cat(normalised)
    assert values.numel() > 100_000
    assert values.std().item() == pytest.approx(1.0, rel=0.02)
    assert values.abs().max().item() <= 2 / 0.87962566103423978 + 1e-4
    limit = math.sqrt(6 / (model.fc.in_features + model.fc.out_features))
    assert model.fc.weight.abs().max().item() <= limit
    assert model.fc.weight.abs().max().item() > 0.9 * limit
    assert torch.all(model.fc.bias == 0)


# --------------------------------------------------------------------------------------------
# DropBlock placement (ORIGINAL.md §1.7)


def dropblock_scales(model: nn.Module) -> dict[str, set[float]]:
    scales: dict[str, set[float]] = {}
    for name, module in model.named_modules():
        if isinstance(module, DropBlock2d):
            assert module.block_size == 7
            scales.setdefault(name.split(".")[0], set()).add(module.gamma_scale)
    return scales


def test_assemble_resnet_has_dropblock_in_stages_3_and_4_only() -> None:
    model = create_model("assemble_resnet50", num_classes=1001, base_width=8)
    assert dropblock_scales(model) == {"layer3": {0.25}, "layer4": {1.0}}
    # Stage 3: in big, little and merge (shortcut BN included), but not on little_e.
    names = [n for n, m in model.named_modules() if isinstance(m, DropBlock2d)]
    for part in ("layer3.big", "layer3.little.", "layer3.merge", "layer4.0.downsample"):
        assert any(n.startswith(part) for n in names), part
    assert not any("little_e" in n for n in names)
    assert model.set_dropblock_keep_prob(0.9) == 4  # one per block_layer, shared by its blocks
    without = create_model("assemble_resnet50", base_width=8, dropblock=False)
    assert without.set_dropblock_keep_prob(0.9) == 0


def test_se_mobilenet_has_dropblock_in_the_14_and_7_px_blocks() -> None:
    model = create_model("se_mobilenet_v1", width_multiplier=0.25)
    scale_of_block = {
        index: block.drop_block.gamma_scale
        for index, block in enumerate(model.blocks)
        if isinstance(block.drop_block, DropBlock2d)
    }
    assert scale_of_block == {**dict.fromkeys(range(5, 11), 0.25), 11: 1.0, 12: 1.0}
    assert model.set_dropblock_keep_prob(0.9) == 2  # one layer per stage, shared by its blocks
