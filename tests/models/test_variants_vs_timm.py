"""The paper's SE, SK, anti-alias and MobileNet variants against timm's equivalent networks, and
against hand computations where timm's layout differs from the original's.

timm's networks get random non-trivial weights (BN γ never zero, so no residual branch is
silenced, random β, running statistics of real activations); their state dict, with keys
renamed where the two layouts name the same tensor differently, must load strictly into ours
and give the same eval-mode logits (fp32). Full widths, since timm rounds SE and SK widths to
multiples of 8 and has no SK minimum width L; few blocks, which keeps every kind of block
(strided, projecting, identity) and the suite fast.

Where the layouts disagree the reference is a step-by-step computation written from the spec
(ORIGINAL.md §1.2-§1.4, §1.8; paper Table 9):
- SK combined with anti-aliasing: timm blurs inside each SK branch, before the fusion; the
  original blurs the fused output (§1.4), so the A2 block is computed by hand;
- the 'proj' anti-alias place (blur before the 1×1 of a strided projection) has no timm model;
- SE-MobileNet: timm puts SE between the depthwise and the pointwise conv; ours (paper §4) puts
  it after the pointwise conv's BN + ReLU.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from assembled_lightning.models import BlurPool2d, create_model
from assembled_lightning.models.mobilenet import DepthwiseSeparable

timm = pytest.importorskip("timm")
from timm.layers import BlurPool2d as TimmBlurPool2d  # noqa: E402
from timm.models.resnet import Bottleneck as TimmBottleneck  # noqa: E402
from timm.models.resnet import ResNet as TimmResNet  # noqa: E402
from timm.models.sknet import SelectiveKernelBottleneck  # noqa: E402

BLOCKS = (2, 1, 1, 1)  # layer1: a projecting and an identity block; layers 2-4: strided blocks
# ResNet-D as timm's *50d/*152d models: 3-conv stem of width 32, 2×2 avg-pool shortcut.
RESNET_D = {"stem_width": 32, "stem_type": "deep", "avg_down": True}


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN γ in [0.5, 1) and β, zero SE biases (the original's SE is bias-free), and BN
    running statistics measured on a batch of noise (random ones would leave a deep network
    nearly blind to its input, and the comparison would see little); returns it in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.Conv2d) and ".se." in f".{name}" and module.bias is not None:
                module.bias.zero_()  # timm's SE convs have biases; ours have none
        for norm in norms:
            norm.weight.copy_(torch.rand(norm.num_features, generator=generator) * 0.5 + 0.5)
            norm.bias.copy_(torch.randn(norm.num_features, generator=generator) * 0.1)
            norm.momentum = 1.0  # the running statistics become those of the next batch
        model.train()(torch.randn(8, 3, 64, 64, generator=generator))
        for norm in norms:
            norm.momentum = 0.1
    return model.eval()


def timm_resnet(block: type, **kwargs: Any) -> nn.Module:
    torch.manual_seed(0)
    return randomise(TimmResNet(block=block, layers=BLOCKS, **RESNET_D, **kwargs))


def sk_bottleneck_keys(state: dict[str, torch.Tensor], fused: bool) -> dict[str, torch.Tensor]:
    """timm's SelectiveKernelBottleneck keys → ours. ``fused``: the original's one 3×3 conv
    with 2·C outputs and one BN over them = timm's two 3×3 paths stacked (path 0 = channels
    [0, C), ORIGINAL.md §1.3); else the two paths keep their own conv (``.0``) and BN (``.1``)."""
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        head, _, tail = key.partition(".conv2.")
        if not tail:  # not inside a block's SK unit: only the 1×1 convs' ConvNormAct differ
            for timm_name, ours in (
                (".conv1.conv.", ".conv1."),
                (".conv1.bn.", ".bn1."),
                (".conv3.conv.", ".conv3."),
                (".conv3.bn.", ".bn3."),
            ):
                key = key.replace(timm_name, ours)
            renamed[key] = value
            continue
        attention = {"attn.fc_reduce.": "fc1.", "attn.bn.": "fc_bn.", "attn.fc_select.": "fc2."}
        for timm_name, ours in attention.items():
            if tail.startswith(timm_name):
                renamed[f"{head}.conv2.{ours}{tail.removeprefix(timm_name)}"] = value
                break
        else:  # paths.<i>.conv.weight / paths.<i>.bn.<field>
            _, index, layer, field = tail.split(".")
            if not fused:
                position = {"conv": "0", "bn": "1"}[layer]
                renamed[f"{head}.conv2.paths.{index}.{position}.{field}"] = value
            elif index == "0":
                other = state[f"{head}.conv2.paths.1.{layer}.{field}"]
                both = value if field == "num_batches_tracked" else torch.cat([value, other])
                renamed[f"{head}.conv2.{layer}.{field}"] = both
    return renamed


def without_se_biases(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    assert all(not state[k].any() for k in state if ".se." in k and k.endswith(".bias"))
    return {k: v for k, v in state.items() if not (".se." in k and k.endswith(".bias"))}


def empty_model(name: str, **overrides: Any) -> nn.Module:
    """Ours, for a strict load to fill: built on the meta device (the TF-style initialisation of
    millions of weights is slow on a CPU and would be overwritten), unless it has tensors
    outside its state dict (the blur filters), which it then computes itself on the CPU."""
    with torch.device("meta"):
        model = create_model(name, **overrides)
    tensors = {k for k, _ in model.named_parameters()} | {k for k, _ in model.named_buffers()}
    if tensors == set(model.state_dict()):
        return model.to_empty(device="cpu")
    return create_model(name, init="torchvision", **overrides)  # the cheaper initialisation


def ours_with(state: dict[str, torch.Tensor], name: str, **overrides: Any) -> nn.Module:
    model = empty_model(name, block_counts=BLOCKS, **overrides)
    own = model.state_dict()
    assert set(state) == set(own), sorted(set(state) ^ set(own))[:8]
    model.load_state_dict(state, strict=True)
    return model.eval()


def images(size: int = 64) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def assert_same_logits(reference: nn.Module, ours: nn.Module, size: int = 64) -> torch.Tensor:
    x = images(size)
    expected, logits = reference(x), ours(x)
    assert logits.shape == expected.shape == (2, 1000)
    # A non-degenerate comparison: the logits depend on the image.
    assert (expected[0] - expected[1]).abs().max() > 0.1 * expected.abs().max()
    assert (logits - expected).abs().max().item() <= 1e-5 * max(1.0, expected.abs().max().item())
    return expected


# --------------------------------------------------------------------------------------------
# SE, SK and anti-aliased ResNet-D variants = timm's seresnet*d / skresnet*d / resnetblur*d


def test_se_variant_is_timms_seresnet_d() -> None:
    """E4/C1 (R50D + SE r=16) = timm's seresnet152d layout (deep stem, avg-down, SE after the
    last BN before the residual add, ORIGINAL.md §1.8), at depth (2, 1, 1, 1)."""
    reference = timm_resnet(TimmBottleneck, block_args={"attn_layer": "se"})
    ours = ours_with(without_se_biases(reference.state_dict()), "resnet50d_se")
    assert [m.fc1.out_channels for m in (ours.layer1[0].se, ours.layer4[0].se)] == [16, 128]
    expected = assert_same_logits(reference, ours)
    # The comparison sees the SE gates: the same network without them gives other logits.
    for module in ours.modules():
        if hasattr(module, "se"):
            module.se = nn.Identity()
    with torch.no_grad():
        assert (ours(images()) - expected).abs().max() > 1e-2


@pytest.mark.parametrize(
    ("name", "sk_kwargs", "attn_layer"),
    [
        # C4: the kept design, one 3×3 conv with 2× channels, d = max(C/2, 32) = C/2
        ("resnet50d_c4", {"kernel_size": [3, 3], "split_input": False, "rd_ratio": 0.5}, None),
        # C5: the same with SE (r=16) after the last BN
        ("resnet50d_c5", {"kernel_size": [3, 3], "split_input": False, "rd_ratio": 0.5}, "se"),
        # C3: the SKNet pair of a real 3×3 and a real 5×5 branch (no dilation), r=2
        (
            "resnet50d_c3",
            {"kernel_size": [3, 5], "keep_3x3": False, "split_input": False, "rd_ratio": 0.5},
            None,
        ),
    ],
)
def test_sk_variants_are_timms_selective_kernel_resnet_d(
    name: str, sk_kwargs: dict[str, Any], attn_layer: str | None
) -> None:
    """The SK rows = timm's SelectiveKernelBottleneck ResNet-D (skresnet50d's stem and
    shortcut) with the original's SK settings: both branches see the whole input, no BN/ReLU
    after the fusion, r=2 (timm's defaults: split input, a dilated 3×3, r=1/16)."""
    block_args: dict[str, Any] = {"sk_kwargs": sk_kwargs}
    if attn_layer:
        block_args["attn_layer"] = attn_layer
    reference = timm_resnet(SelectiveKernelBottleneck, block_args=block_args)
    fused = sk_kwargs["kernel_size"] == [3, 3]
    state = without_se_biases(sk_bottleneck_keys(reference.state_dict(), fused))
    ours = ours_with(state, name)
    # Independent of the renaming: what timm built is what the paper row says.
    sk = reference.layer2[0].conv2
    second = sk_kwargs["kernel_size"][1]
    assert [p.conv.kernel_size for p in sk.paths] == [(3, 3), (second, second)]
    assert [p.conv.dilation for p in sk.paths] == [(1, 1), (1, 1)]
    assert sk.attn.fc_reduce.out_channels == 64  # d = max(128 / 2, 32)
    assert_same_logits(reference, ours)


@pytest.mark.parametrize("places", [("max", "sconv"), ("sconv",)])
def test_anti_aliased_resnet_d_is_timms_resnetblur_d(places: tuple[str, ...]) -> None:
    """timm's resnetblur50d blurs at the stem pool (max-pool stride 1 → blur/2) and after the
    3×3 of every strided block (3×3 at stride 1 → BN → ReLU → blur/2): our 'max' + 'sconv'.
    'sconv' alone is the same network with timm's plain stem max-pool put back."""
    reference = timm_resnet(TimmBottleneck, aa_layer=TimmBlurPool2d)
    if places == ("sconv",):
        reference.maxpool = nn.MaxPool2d(3, 2, 1)
    ours = ours_with(reference.state_dict(), "resnet50d", anti_alias=places)
    blurs = sum(isinstance(m, BlurPool2d) for m in ours.modules())
    assert blurs == 3 + ("max" in places)  # layers 2-4 (+ the stem)
    assert_same_logits(reference, ours)


# --------------------------------------------------------------------------------------------
# MobileNet-V1 = timm's mobilenetv1_100


def test_mobilenet_v1_is_timms_mobilenetv1_100() -> None:
    """Howard et al.'s 13 depthwise-separable blocks as timm builds them, with ReLU: timm's
    default activation is ReLU6 (TF-slim's), ours the paper's ReLU, so timm gets act_layer."""
    torch.manual_seed(0)
    reference = randomise(timm.create_model("mobilenetv1_100", act_layer="relu"))
    renamed: dict[str, torch.Tensor] = {}
    blocks = [(s, b) for s, stage in enumerate(reference.blocks) for b in range(len(stage))]
    index_of = {f"blocks.{s}.{b}.": f"blocks.{i}." for i, (s, b) in enumerate(blocks)}
    for key, value in reference.state_dict().items():
        prefix = ".".join(key.split(".")[:3]) + "."
        if prefix in index_of:
            key = index_of[prefix] + key.removeprefix(prefix)
            key = key.replace(".bn1.", ".bn_dw.").replace(".bn2.", ".bn_pw.")
        else:
            key = key.replace("bn1.", "bn_stem.").replace("classifier.", "fc.")
        renamed[key] = value
    assert len(blocks) == 13
    ours = empty_model("mobilenet_v1")
    assert set(renamed) == set(ours.state_dict())
    ours.load_state_dict(renamed, strict=True)
    assert_same_logits(reference, ours.eval())


# --------------------------------------------------------------------------------------------
# Hand computations where timm's layout differs


def bn(x: torch.Tensor, layer: nn.BatchNorm2d) -> torch.Tensor:
    """Eval-mode BN written out: (x − μ) / sqrt(σ² + ε) · γ + β."""
    shape = (1, -1, 1, 1)
    scale = layer.weight / torch.sqrt(layer.running_var + layer.eps)
    return (x - layer.running_mean.view(shape)) * scale.view(shape) + layer.bias.view(shape)


def blur(x: torch.Tensor, stride: int = 2) -> torch.Tensor:
    """Reflect-pad 1, then the [1, 2, 1]ᵀ[1, 2, 1] / 16 filter per channel, stride 2 (§1.4)."""
    taps = torch.tensor([1.0, 2.0, 1.0])
    kernel = (taps[:, None] * taps[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(
        F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, stride=stride, groups=x.shape[1]
    )


def sk_branches(x: torch.Tensor, sk: nn.Module, stride: int = 1) -> tuple[torch.Tensor, ...]:
    """§1.3: ONE 3×3 conv C → 2C, BN, ReLU, split into the halves U0 = [0, C), U1 = [C, 2C)."""
    both = F.relu(bn(F.conv2d(x, sk.conv.weight, stride=stride, padding=1), sk.bn))
    return tuple(both.chunk(2, dim=1))


def fuse(u0: torch.Tensor, u1: torch.Tensor, sk: nn.Module) -> torch.Tensor:
    """§1.3: a = fc2(ReLU(BN(fc1(GAP(U0 + U1))))), softmax over the two halves of a."""
    squeeze = (u0 + u1).mean((2, 3), keepdim=True)
    logits = F.conv2d(F.relu(bn(F.conv2d(squeeze, sk.fc1.weight), sk.fc_bn)), sk.fc2.weight)
    a0, a1 = logits.chunk(2, dim=1)
    w0 = torch.exp(a0) / (torch.exp(a0) + torch.exp(a1))
    return u0 * w0 + u1 * (1 - w0)


@torch.no_grad()
def test_sk_with_sconv_blur_block_matches_a_hand_computation() -> None:
    """A2 (R50D + SK + sconv): 1×1 → BN → ReLU → SK at stride 1 → blur/2 → 1×1 → BN, plus the
    avg-pool(2×2, ceil, pad excluded) → 1×1 → BN shortcut, then ReLU (§1.2, §1.4). Our
    DropBlock/SE slots are off in this row; the original has no BN/ReLU after the SK fusion."""
    torch.manual_seed(0)
    model = create_model("resnet50d_sk_a2", base_width=16, block_counts=(1, 1, 1, 1))
    block = randomise(model).layer2[0]
    x = torch.randn(2, 64, 9, 10)  # odd side: the ceil-mode avg-pool and reflect padding show
    reduced = F.relu(bn(F.conv2d(x, block.conv1.weight), block.bn1))
    u0, u1 = sk_branches(reduced, block.conv2)
    out = bn(F.conv2d(blur(fuse(u0, u1, block.conv2)), block.conv3.weight), block.bn3)
    pool = F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)
    shortcut = bn(F.conv2d(pool, block.downsample[1].weight), block.downsample[2])
    result = block(x)
    assert result.shape == (2, 128, 5, 5)
    assert torch.allclose(result, F.relu(out + shortcut), atol=1e-5)
    # Why not timm: blurring each branch before the fusion (its SK with aa_layer) differs.
    timm_order = bn(F.conv2d(fuse(blur(u0), blur(u1), block.conv2), block.conv3.weight), block.bn3)
    assert not torch.allclose(timm_order, out, atol=1e-4)


@torch.no_grad()
def test_proj_anti_alias_block_matches_a_hand_computation() -> None:
    """'proj' (the original's other place): the strided 1×1 shortcut becomes blur/2 → 1×1 at
    stride 1 → BN; the main path keeps its SK at stride 2 (no 'sconv' blur)."""
    torch.manual_seed(0)
    model = create_model("resnet50d_sk_proj", base_width=16, block_counts=(1, 1, 1, 1))
    block = randomise(model).layer2[0]
    x = torch.randn(2, 64, 8, 8)
    u0, u1 = sk_branches(F.relu(bn(F.conv2d(x, block.conv1.weight), block.bn1)), block.conv2, 2)
    out = bn(F.conv2d(fuse(u0, u1, block.conv2), block.conv3.weight), block.bn3)
    shortcut = bn(F.conv2d(blur(x), block.downsample[1].weight), block.downsample[2])
    result = block(x)
    assert result.shape == (2, 128, 4, 4)
    assert torch.allclose(result, F.relu(out + shortcut), atol=1e-5)


@torch.no_grad()
def test_se_mobilenet_block_matches_a_hand_computation() -> None:
    """SE-MobileNet (Table 9): 3×3 depthwise → BN → ReLU → 1×1 → BN → ReLU → SE, the SE gate
    = sigmoid(W₂ ReLU(W₁ GAP(x))) with bias-free W (r=2 here)."""
    torch.manual_seed(0)
    model = randomise(create_model("se_mobilenet_v1", width_multiplier=0.25))
    block = model.blocks[3]
    assert isinstance(block, DepthwiseSeparable) and block.conv_dw.stride == (2, 2)
    x = torch.randn(2, 32, 9, 8)
    dw = F.conv2d(x, block.conv_dw.weight, stride=2, padding=1, groups=32)
    out = F.relu(bn(dw, block.bn_dw))
    out = F.relu(bn(F.conv2d(out, block.conv_pw.weight), block.bn_pw))
    w1 = block.se.fc1.weight.flatten(1)
    w2 = block.se.fc2.weight.flatten(1)
    assert w1.shape == (32, 64) and w2.shape == (64, 32)  # r = 2 on 64 channels
    gate = torch.sigmoid(F.relu(out.mean((2, 3)) @ w1.T) @ w2.T)
    expected = out * gate[:, :, None, None]
    result = block(x)
    assert result.shape == (2, 64, 5, 4)
    assert torch.allclose(result, expected, atol=1e-5)
