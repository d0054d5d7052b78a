"""The package's layers against independent hand computations (ORIGINAL.md §1.3, §1.4, §1.7, §1.8).

Blur-pool, Selective Kernel, Squeeze-Excite, DropBlock and TF-'SAME' max-pool are each checked
against a step-by-step re-computation written here from the spec, not from the package code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from assembled_lightning.models import (
    BlurPool2d,
    DropBlock2d,
    ResNetConfig,
    SelectiveKernel,
    SqueezeExcite,
    TFSameMaxPool2d,
    create_model,
)
from assembled_lightning.models.big_little import BigLittleStage, BigLittleStem
from assembled_lightning.models.layers import binomial_filter

# --------------------------------------------------------------------------------------------
# Helpers


def pascal_row(size: int) -> np.ndarray:
    """Row ``size`` of Pascal's triangle, built by repeated convolution with [1, 1]."""
    row = np.ones(1)
    for _ in range(size - 1):
        row = np.convolve(row, np.ones(2))
    return row


def randomise_bn(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial affine parameters and running statistics in every BatchNorm."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, nn.BatchNorm2d):
                n = bn.num_features
                bn.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                bn.bias.copy_(torch.randn(n, generator=generator) * 0.5)
                bn.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
                bn.running_var.copy_(torch.rand(n, generator=generator) + 0.5)


def bn_inference(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """Eval-mode BN written out: (x − μ) / sqrt(σ² + ε) · γ + β."""
    mean = bn.running_mean[None, :, None, None]
    std = torch.sqrt(bn.running_var + bn.eps)[None, :, None, None]
    return (x - mean) / std * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]


# --------------------------------------------------------------------------------------------
# Blur-pool (paper §3.1.3, ORIGINAL.md §1.4)


@pytest.mark.parametrize("size", [2, 3, 4, 5, 7])
def test_binomial_filter_is_the_normalised_outer_product_of_pascal_rows(size: int) -> None:
    expected = np.outer(pascal_row(size), pascal_row(size))
    expected /= expected.sum()
    kernel = binomial_filter(size)
    assert kernel.shape == (size, size)
    assert np.allclose(kernel.double().numpy(), expected, atol=1e-7)
    assert float(kernel.double().sum()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("size", [2, 3, 4, 5, 7])
@pytest.mark.parametrize("shape", [(10, 10), (11, 12)])
def test_blur_pool_is_a_depthwise_binomial_filter_with_reflect_padding(
    size: int, shape: tuple[int, int]
) -> None:
    """Reflect-pad (size−1)//2 on every side, then a stride-2 'VALID' per-channel blur."""
    generator = torch.Generator().manual_seed(size)
    x = torch.randn(2, 3, *shape, generator=generator, dtype=torch.float64)
    kernel = np.outer(pascal_row(size), pascal_row(size))
    kernel /= kernel.sum()
    pad = (size - 1) // 2
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect")
    out_h = (padded.shape[2] - size) // 2 + 1
    out_w = (padded.shape[3] - size) // 2 + 1
    expected = np.empty((2, 3, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, :, 2 * i : 2 * i + size, 2 * j : 2 * j + size]
            expected[:, :, i, j] = (window * kernel).sum(axis=(2, 3))

    blur = BlurPool2d(3, filter_size=size, stride=2)
    out = blur(x)
    assert out.shape == expected.shape
    assert np.allclose(out.numpy(), expected, atol=1e-6)


def test_blur_pool_filter_sums_to_one_per_channel_and_keeps_constants() -> None:
    blur = BlurPool2d(5, filter_size=3, stride=2)
    assert blur.filter.shape == (5, 1, 3, 3)
    assert torch.allclose(blur.filter.sum(dim=(1, 2, 3)), torch.ones(5))
    constant = torch.full((1, 5, 8, 8), 3.25)
    assert torch.allclose(blur(constant), torch.full((1, 5, 4, 4), 3.25))


def test_blur_pool_filter_is_not_part_of_any_state_dict() -> None:
    """The TF checkpoints have no blur variable: the filter must be a non-persistent buffer."""
    blur = BlurPool2d(4, filter_size=5)
    assert "filter" in dict(blur.named_buffers())
    assert blur.state_dict() == {}
    model = create_model("resnet50d_sk_a2", num_classes=10, base_width=8, block_counts=(1, 1, 1, 1))
    blur_layers = [name for name, m in model.named_modules() if isinstance(m, BlurPool2d)]
    assert len(blur_layers) == 3  # the stride-2 first blocks of layer2..layer4
    assert not [key for key in model.state_dict() if key.endswith("filter")]


def test_blur_pool_rejects_sizes_without_a_binomial_row() -> None:
    with pytest.raises(ValueError, match=r"1\.\.7"):
        BlurPool2d(3, filter_size=8)


# --------------------------------------------------------------------------------------------
# Selective Kernel (paper §3.1.2, ORIGINAL.md §1.3)


def selective_fusion(u0: torch.Tensor, u1: torch.Tensor, sk: SelectiveKernel) -> torch.Tensor:
    """GAP(U0+U1) → fc1 → BN → ReLU → fc2 → per-channel softmax over the two branches."""
    channels = u0.shape[1]
    s = (u0 + u1).mean(dim=(2, 3), keepdim=True)
    z = F.relu(bn_inference(F.conv2d(s, sk.fc1.weight), sk.fc_bn))
    attention = F.conv2d(z, sk.fc2.weight)
    stacked = torch.stack([attention[:, :channels], attention[:, channels:]], dim=0)
    weights = torch.softmax(stacked, dim=0)
    return u0 * weights[0] + u1 * weights[1]


@pytest.mark.parametrize("stride", [1, 2])
def test_fused_selective_kernel_matches_a_step_by_step_computation(stride: int) -> None:
    torch.manual_seed(0)
    sk = SelectiveKernel(4, (3, 3), stride=stride, reduction=2, min_dim=3).eval()
    randomise_bn(sk)
    # ONE 3×3 conv with 2·C outputs (TF kernel [3, 3, C, 2C]), d = max(int(4 / 2), L=3) = 3.
    assert sk.conv.weight.shape == (8, 4, 3, 3)
    assert sk.fc1.weight.shape == (3, 4, 1, 1)
    assert sk.fc2.weight.shape == (8, 3, 1, 1)
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        both = F.relu(bn_inference(F.conv2d(x, sk.conv.weight, stride=stride, padding=1), sk.bn))
        u0, u1 = both[:, :4], both[:, 4:]
        expected = selective_fusion(u0, u1, sk)
        out = sk(x)
    side = (5 + 2 - 3) // stride + 1
    assert out.shape == (1, 4, side, side)
    assert torch.allclose(out, expected, atol=1e-6)
    # The two attention weights are not trivially 0.5/0.5 (the test would not see a swap).
    assert not torch.allclose(out, 0.5 * (u0 + u1), atol=1e-3)


def test_selective_kernel_pair_of_branches_matches_a_step_by_step_computation() -> None:
    torch.manual_seed(1)
    sk = SelectiveKernel(6, (3, 5), stride=1, reduction=2, min_dim=4).eval()
    randomise_bn(sk)
    x = torch.randn(2, 6, 7, 7)
    with torch.no_grad():
        branches = []
        for path, k in zip(sk.paths, (3, 5), strict=True):
            conv, bn = path[0], path[1]
            assert conv.weight.shape == (6, 6, k, k)
            branches.append(F.relu(bn_inference(F.conv2d(x, conv.weight, padding=k // 2), bn)))
        expected = selective_fusion(branches[0], branches[1], sk)
        assert torch.allclose(sk(x), expected, atol=1e-6)


def test_selective_kernel_shapes_and_attention_width() -> None:
    pair = SelectiveKernel(8, (3, 5), stride=2)
    assert [p[0].kernel_size for p in pair.paths] == [(3, 3), (5, 5)]
    assert pair(torch.randn(2, 8, 8, 8)).shape == (2, 8, 4, 4)
    assert pair(torch.randn(2, 8, 7, 9)).shape == (2, 8, 4, 5)
    fused = SelectiveKernel(8, (3, 3), stride=2)
    assert fused(torch.randn(2, 8, 8, 8)).shape == (2, 8, 4, 4)
    # d = max(int(C / r), L): L=32 wins for thin units, C/r for C >= 64 (ORIGINAL.md §1.3).
    assert SelectiveKernel(16, (3, 3)).fc1.out_channels == 32
    assert SelectiveKernel(256, (3, 3)).fc1.out_channels == 128
    assert SelectiveKernel(256, (3, 3), reduction=16).fc1.out_channels == 32
    with pytest.raises(ValueError, match="kernel_sizes"):
        SelectiveKernel(8, (5, 5))


# --------------------------------------------------------------------------------------------
# Squeeze-and-Excitation (ORIGINAL.md §1.8)


def test_squeeze_excite_matches_a_hand_computation() -> None:
    torch.manual_seed(0)
    se = SqueezeExcite(8, reduction=4)
    assert se.fc1.bias is None and se.fc2.bias is None  # bias-free like the original
    x = torch.randn(2, 8, 3, 4)
    w1 = se.fc1.weight.detach().reshape(2, 8)
    w2 = se.fc2.weight.detach().reshape(8, 2)
    expected = torch.empty_like(x)
    for n in range(2):
        squeeze = x[n].reshape(8, -1).mean(dim=1)
        gate = torch.sigmoid(w2 @ torch.clamp(w1 @ squeeze, min=0))
        expected[n] = x[n] * gate[:, None, None]
    with torch.no_grad():
        assert torch.allclose(se(x), expected, atol=1e-6)


def test_squeeze_excite_rejects_a_reduction_leaving_no_channels() -> None:
    with pytest.raises(ValueError, match="reduction"):
        SqueezeExcite(8, reduction=16)


# --------------------------------------------------------------------------------------------
# DropBlock (paper §3.2.3, ORIGINAL.md §1.7)


def gamma_of(size_h: int, size_w: int, block: int, keep_prob: float, scale: float) -> float:
    """γ = scale·(1−kp)·(H·W)/bs² / ((H−bs+1)(W−bs+1)) as the original."""
    seeds = (size_h - block + 1) * (size_w - block + 1)
    return scale * (1 - keep_prob) * size_h * size_w / block**2 / seeds


def closed_form_dropped_fraction(size: int, block: int, keep_prob: float, scale: float) -> float:
    """Exact expectation of the algorithm: a pixel survives iff none of the seeds whose block
    covers it fires, so E[dropped] = 1 − mean over pixels of (1 − γ)^(#covering seeds)."""
    seeds = size - block + 1
    gamma = gamma_of(size, size, block, keep_prob, scale)
    coverage = np.zeros((size, size))
    for i in range(seeds):
        for j in range(seeds):
            coverage[i : i + block, j : j + block] += 1
    return 1.0 - float(((1.0 - gamma) ** coverage).mean())


def active_dropblock(block: int, scale: float, keep_prob: float) -> DropBlock2d:
    layer = DropBlock2d(block_size=block, gamma_scale=scale).train()
    layer.set_keep_prob(keep_prob)
    return layer


def test_dropblock_is_the_identity_in_eval_mode_and_when_inactive() -> None:
    x = torch.randn(2, 4, 9, 9)
    layer = active_dropblock(3, 1.0, 0.5)
    assert torch.equal(layer.eval()(x), x)
    layer.train().set_keep_prob(1.0)
    assert torch.equal(layer(x), x)
    unscaled = active_dropblock(3, 0.0, 0.5)  # γ-scale 0 switches a stage off
    assert torch.equal(unscaled(x), x)
    # ...and the active layer does change the input in train mode (the checks above can fail).
    torch.manual_seed(0)
    assert not torch.equal(active_dropblock(3, 1.0, 0.5)(x), x)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.0001, 2.0])
def test_dropblock_set_keep_prob_rejects_values_outside_0_1(bad: float) -> None:
    layer = DropBlock2d(7, 1.0)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        layer.set_keep_prob(bad)
    layer.set_keep_prob(1e-3)
    layer.set_keep_prob(1.0)
    assert float(layer.keep_prob) == 1.0
    assert "keep_prob" not in layer.state_dict()


def test_dropblock_mask_is_shared_by_every_sample_of_the_batch() -> None:
    torch.manual_seed(0)
    layer = active_dropblock(3, 1.0, 0.7)
    out = layer(torch.ones(4, 16, 9, 9))
    zeros = out == 0
    assert zeros.any() and not zeros.all()
    for n in range(1, 4):
        assert torch.equal(zeros[n], zeros[0])


def test_dropblock_output_is_renormalised_by_numel_over_kept() -> None:
    layer = active_dropblock(3, 1.0, 0.7)
    x = torch.randn(3, 8, 10, 10)
    torch.manual_seed(5)
    out = layer(x)
    torch.manual_seed(5)
    mask = layer.drop_mask(x)
    assert mask.shape == (1, 8, 10, 10)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(out, x * mask * (mask.numel() / mask.sum()), atol=1e-6)
    # With an all-ones input the output mean is exactly 1 (x · mask · numel / sum(mask)).
    torch.manual_seed(6)
    ones_out = layer(torch.ones(3, 8, 10, 10))
    assert (ones_out == 0).any()
    assert ones_out.mean().item() == pytest.approx(1.0, abs=1e-5)


def test_dropblock_gamma_follows_the_original_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uniform draws just below/above γ fire every seed/no seed: pins γ on a non-square map."""
    height, width, block, keep_prob, scale = 14, 20, 7, 0.9, 0.25
    gamma = gamma_of(height, width, block, keep_prob, scale)
    layer = active_dropblock(block, scale, keep_prob)
    x = torch.ones(1, 2, height, width)
    shapes = []

    def constant_rand(value: float):  # type: ignore[no-untyped-def]
        def rand(*shape, **kwargs):  # type: ignore[no-untyped-def]
            shapes.append(tuple(shape))
            return torch.full(shape, value, device=kwargs.get("device"))

        return rand

    monkeypatch.setattr(torch, "rand", constant_rand(gamma * (1 - 1e-4)))
    assert layer.drop_mask(x).sum() == 0
    monkeypatch.setattr(torch, "rand", constant_rand(gamma * (1 + 1e-4)))
    assert layer.drop_mask(x).sum() == x.numel()
    # One seed map for the whole batch, on the (H − bs + 1) × (W − bs + 1) grid.
    assert shapes == [(1, 2, height - block + 1, width - block + 1)] * 2


@pytest.mark.parametrize(("block", "size"), [(7, 14), (4, 9), (3, 8)])
def test_dropblock_seed_drops_the_block_starting_at_it(
    monkeypatch: pytest.MonkeyPatch, block: int, size: int
) -> None:
    """A seed at grid cell (i, j) zeroes pixels [i, i+bs) × [j, j+bs): blocks lie fully inside
    the map (seeds sampled on the valid grid, padded (tl, br) and max-pooled 'SAME')."""
    seeds = size - block + 1
    layer = active_dropblock(block, 1.0, 0.9)
    for i, j in [(0, 0), (seeds - 1, seeds - 1), (1, seeds - 2)]:
        draw = torch.ones(1, 1, seeds, seeds)
        draw[0, 0, i, j] = 0.0  # the only draw below γ
        monkeypatch.setattr(torch, "rand", lambda *shape, draw=draw, **kwargs: draw.clone())
        mask = layer.drop_mask(torch.ones(1, 1, size, size))[0, 0]
        expected = torch.ones(size, size)
        expected[i : i + block, j : j + block] = 0.0
        assert torch.equal(mask, expected), (i, j)


def test_dropblock_on_a_map_the_size_of_the_block_drops_whole_channels() -> None:
    torch.manual_seed(0)
    layer = active_dropblock(7, 1.0, 0.9)
    masks = torch.cat([layer.drop_mask(torch.ones(1, 512, 7, 7)) for _ in range(10)])
    per_channel = masks.flatten(2)
    assert torch.equal(per_channel.amin(dim=2), per_channel.amax(dim=2))  # all-or-nothing
    dropped_channels = 1.0 - per_channel[:, :, 0].mean().item()
    assert dropped_channels == pytest.approx(0.1, abs=0.02)  # γ = 1 − kp on a 7×7 map


def test_dropblock_shrinks_the_block_on_maps_smaller_than_it() -> None:
    torch.manual_seed(0)
    layer = active_dropblock(7, 1.0, 0.5)
    out = layer(torch.randn(2, 64, 3, 5))
    assert out.shape == (2, 64, 3, 5) and torch.isfinite(out).all()


# Measured with this implementation (block 7, keep_prob 0.9, 256 channels, 200 draws):
#   size  γ-scale  measured  closed form  target (scale·(1−kp))
#    14    1.0     0.0932     0.0929      0.100   (−6.8 %)
#    28    1.0     0.0939     0.0939      0.100   (−6.1 %)
#    32    1.0     0.0944     0.0941      0.100   (−5.6 %)
#    56    1.0     0.0949     0.0946      0.100   (−5.1 %)
#    32    0.25    0.0243     0.0246      0.025   (−2.9 %)
#    56    0.25    0.0246     0.0247      0.025   (−1.7 %)
# The γ formula ignores block overlaps, so the real dropped fraction is a few % below target.
@pytest.mark.parametrize(("size", "scale"), [(32, 1.0), (56, 0.25)])
def test_dropblock_drops_the_expected_fraction(size: int, scale: float) -> None:
    torch.manual_seed(1234)
    keep_prob, block = 0.9, 7
    layer = active_dropblock(block, scale, keep_prob)
    x = torch.ones(1, 256, size, size)
    # 16 draws × 256 independent channels: relative standard error ≈ 1 % in both settings.
    dropped = float(np.mean([1.0 - layer.drop_mask(x).mean().item() for _ in range(16)]))
    exact = closed_form_dropped_fraction(size, block, keep_prob, scale)
    # The algorithm's own expectation (≈ 5 standard errors of tolerance).
    assert dropped == pytest.approx(exact, rel=0.05)
    # The design target scale·(1 − keep_prob): true within 10 % (the overlap deficit is 1–7 %).
    target = scale * (1 - keep_prob)
    assert dropped == pytest.approx(target, rel=0.10)
    if scale == 1.0:
        # At full γ-scale the overlap deficit is systematic: clearly below the target.
        assert exact < 0.96 * target
        assert dropped < 0.98 * target


# --------------------------------------------------------------------------------------------
# TF 'SAME' max-pool of the vanilla stem (ORIGINAL.md §0 note)


@pytest.mark.parametrize("size", [8, 112])
def test_tf_same_max_pool_pads_only_bottom_and_right(size: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size) - 10.0  # all negative: a zero padding would show
    expected = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 3, 2)
    out = TFSameMaxPool2d(3, 2)(x)
    assert out.shape == (2, 3, size // 2, size // 2)
    assert torch.equal(out, expected)
    assert (out < -5).all()


def test_tf_same_max_pool_differs_from_symmetric_padding_on_even_maps() -> None:
    # TF's windows start at columns 0, 2, 4, 6; torch's padding=1 windows at −1, 1, 3, 5.
    # A peak in column 2 is seen by TF outputs 0 and 1 but only by torch output 1.
    crafted = torch.zeros(1, 1, 8, 8)
    crafted[0, 0, 0, 2] = 5.0
    tf_rows = TFSameMaxPool2d(3, 2)(crafted)[0, 0, 0].tolist()
    torch_rows = nn.MaxPool2d(3, 2, 1)(crafted)[0, 0, 0].tolist()
    assert tf_rows == [5.0, 5.0, 0.0, 0.0]
    assert torch_rows == [0.0, 5.0, 0.0, 0.0]


def test_tf_same_max_pool_equals_symmetric_padding_on_odd_maps() -> None:
    """On odd sides TF 'SAME' pads 1 on both sides, like MaxPool2d(3, 2, padding=1)."""
    x = torch.randn(2, 3, 9, 7)
    assert torch.equal(TFSameMaxPool2d(3, 2)(x), nn.MaxPool2d(3, 2, 1)(x))


# --------------------------------------------------------------------------------------------
# BigLittleNet stem module and stage (ORIGINAL.md §1.5)


def test_big_little_stem_matches_the_spec() -> None:
    """big = BN(conv3×3/2); little = BN(conv1×1(ReLU(BN(conv3×3/2(ReLU(BN(conv3×3)))))));
    out = ReLU(BN(conv1×1(ReLU(big + little))))."""
    config = ResNetConfig(big_little=True, shortcut="avg3", bl_alpha=2)
    stem = BigLittleStem(config, 8).eval()
    randomise_bn(stem)
    assert stem.little_conv1.out_channels == 4  # 64 / α in the original, 8 / 2 here
    x = torch.randn(2, 8, 16, 16)

    def conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, y: torch.Tensor) -> torch.Tensor:
        return bn_inference(
            F.conv2d(y, conv.weight, stride=conv.stride, padding=conv.kernel_size[0] // 2), bn
        )

    with torch.no_grad():
        assert stem.big_conv.stride == (2, 2) and stem.little_conv2.stride == (2, 2)
        big = conv_bn(stem.big_conv, stem.big_bn, x)
        little = F.relu(conv_bn(stem.little_conv1, stem.little_bn1, x))
        little = F.relu(conv_bn(stem.little_conv2, stem.little_bn2, little))
        little = conv_bn(stem.little_conv3, stem.little_bn3, little)
        expected = F.relu(conv_bn(stem.fuse_conv, stem.fuse_bn, F.relu(big + little)))
        out = stem(x)
    assert out.shape == (2, 8, 8, 8)
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("stride", [2, 1])
def test_big_little_stage_merges_by_nearest_upsampling_and_a_sum(stride: int) -> None:
    config = ResNetConfig(big_little=True, shortcut="avg3", base_width=8, bl_alpha=2, bl_beta=4)
    stage = BigLittleStage(config, 32, 8, num_blocks=4, stride=stride, stage_index=1).eval()
    randomise_bn(stage)
    # big: n − 1 blocks at stride 2, last without ReLU; little: max(1, n // β − 1) thin blocks.
    assert len(stage.big) == 3 and len(stage.little) == 1 and len(stage.merge) == 1
    assert stage.big[-1].last_relu is False and stage.big[0].last_relu is True
    assert stage.little[0].conv1.out_channels == 4  # width / α
    assert stage.merge[0].downsample is not None  # the merge block always projects
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad():
        big = stage.big(x)
        assert big.shape == (2, 32, 4, 4)
        assert (big < 0).any()  # no final ReLU on the big branch
        upsampled = big.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        expected = stage.merge(F.relu(stage.little_e(stage.little(x)) + upsampled))
        out = stage(x)
    assert out.shape == (2, 32, 8 // stride, 8 // stride)
    assert torch.allclose(out, expected, atol=1e-6)
