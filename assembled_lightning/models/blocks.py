"""Residual blocks, projection shortcuts and stage builders of the assembled ResNet family.

Module names follow torchvision (``conv1``/``bn1``/…/``downsample``) and timm (avg-pool in
``downsample.0`` of ResNet-D), so their state dicts load into ours without renaming.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .config import ResNetConfig
from .layers import BlurPool2d, DropBlock2d, SelectiveKernel, SqueezeExcite


def batch_norm(config: ResNetConfig, channels: int) -> nn.BatchNorm2d:
    """BatchNorm with the config's eps and momentum."""
    return nn.BatchNorm2d(channels, eps=config.bn_eps, momentum=config.bn_momentum)


def conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    """Bias-free conv, ``padding=k//2``: the original's fixed/'SAME' padding for odd k."""
    return nn.Conv2d(
        in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False
    )


def projection_shortcut(
    config: ResNetConfig,
    in_channels: int,
    out_channels: int,
    stride: int,
    drop_block: nn.Module,
) -> nn.Sequential:
    """[pool or blur] → 1×1 conv → BN (→ DropBlock), as ORIGINAL.md §1.2 'shortcut pooling'."""
    layers: list[nn.Module] = []
    conv_stride = 1
    if config.shortcut != "conv" and stride == 1:
        layers.append(nn.Identity())  # keeps timm's key layout: downsample.1 = conv, .2 = BN
    elif config.shortcut == "avg3":
        layers.append(nn.AvgPool2d(3, stride, padding=1, count_include_pad=True))
    elif config.shortcut == "avg2":
        layers.append(nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False))
    elif "proj" in config.anti_alias and stride != 1:
        layers.append(BlurPool2d(in_channels, config.anti_alias_filter_size, stride))
    else:
        conv_stride = stride
    layers += [conv(in_channels, out_channels, 1, conv_stride), batch_norm(config, out_channels)]
    if not isinstance(drop_block, nn.Identity):
        layers.append(drop_block)
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """What both block types share: the shortcut, the shared DropBlock and the final ReLU.

    The add and every ReLU of the blocks work in place, as torchvision's: each overwrites a BN,
    SE, DropBlock or conv output that nothing reads afterwards and that no backward needs, which
    saves a map per ReLU and per add in training and at inference alike.
    """

    expansion: int
    conv_bn_pairs: ClassVar[tuple[tuple[str, str], ...]]
    """(conv, BN) attribute pairs whose BN reads only that conv's output, which
    :func:`~assembled_lightning.models.fuse_for_inference` folds into the conv."""

    def __init__(
        self,
        downsample: nn.Sequential | None,
        drop_block: nn.Module | None,
        last_relu: bool,
    ) -> None:
        super().__init__()
        self.downsample = downsample
        self.drop_block = drop_block if drop_block is not None else nn.Identity()
        self.last_relu = last_relu

    def last_bn(self) -> nn.BatchNorm2d:
        """The residual branch's last BN, which zero-γ initialises to 0."""
        raise NotImplementedError

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.residual(x)
        out += shortcut
        return F.relu(out, inplace=True) if self.last_relu else out


class Bottleneck(ResidualBlock):
    """1×1 → 3×3 (or SK) [→ blur] → 1×1 bottleneck with the stride in the 3×3 (ResNet-B, §1.2).

    With anti-alias 'sconv' the 3×3/SK runs at stride 1 and a blur-pool does the subsampling
    before the last 1×1 (paper §3.1.3). DropBlock follows every BN and the SK output; SE sits
    after the last BN, before the residual add. ``last_relu=False`` is only used by the last
    block of a BigLittleNet big branch.
    """

    expansion = 4
    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))
    """``bn2`` is an Identity with a Selective Kernel, whose own pairs are folded instead."""

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def __init__(
        self,
        config: ResNetConfig,
        in_channels: int,
        width: int,
        stride: int = 1,
        downsample: nn.Sequential | None = None,
        drop_block: nn.Module | None = None,
        last_relu: bool = True,
    ) -> None:
        super().__init__(downsample, drop_block, last_relu)
        out_channels = width * self.expansion
        blur = "sconv" in config.anti_alias and stride != 1
        inner_stride = 1 if blur else stride
        self.conv1 = conv(in_channels, width, 1)
        self.bn1 = batch_norm(config, width)
        self.selective_kernel = config.selective_kernel != "none"
        if self.selective_kernel:
            self.conv2: nn.Module = SelectiveKernel(
                width,
                (3, 3) if config.selective_kernel == "3x3_2x" else (3, 5),
                inner_stride,
                config.sk_reduction,
                config.sk_min_dim,
                config.bn_eps,
                config.bn_momentum,
            )
            self.bn2: nn.Module = nn.Identity()
        else:
            self.conv2 = conv(width, width, 3, inner_stride)
            self.bn2 = batch_norm(config, width)
        self.aa: nn.Module = (
            BlurPool2d(width, config.anti_alias_filter_size, stride) if blur else nn.Identity()
        )
        self.conv3 = conv(width, out_channels, 1)
        self.bn3 = batch_norm(config, out_channels)
        self.se: nn.Module = (
            SqueezeExcite(out_channels, config.se_reduction)
            if config.se_reduction
            else nn.Identity()
        )

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.drop_block(self.bn1(self.conv1(x))), inplace=True)
        if self.selective_kernel:
            out = self.drop_block(self.conv2(out))
        else:
            out = F.relu(self.drop_block(self.bn2(self.conv2(out))), inplace=True)
        out = self.aa(out)
        return self.se(self.drop_block(self.bn3(self.conv3(out))))


class BasicBlock(ResidualBlock):
    """Two 3×3 convs (ResNet-18/34) with the same optional SE / DropBlock as the bottleneck."""

    expansion = 1
    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"))

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def __init__(
        self,
        config: ResNetConfig,
        in_channels: int,
        width: int,
        stride: int = 1,
        downsample: nn.Sequential | None = None,
        drop_block: nn.Module | None = None,
        last_relu: bool = True,
    ) -> None:
        super().__init__(downsample, drop_block, last_relu)
        self.conv1 = conv(in_channels, width, 3, stride)
        self.bn1 = batch_norm(config, width)
        self.conv2 = conv(width, width, 3)
        self.bn2 = batch_norm(config, width)
        self.se: nn.Module = (
            SqueezeExcite(width, config.se_reduction) if config.se_reduction else nn.Identity()
        )

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.drop_block(self.bn1(self.conv1(x))), inplace=True)
        return self.se(self.drop_block(self.bn2(self.conv2(out))))


def make_drop_block(config: ResNetConfig, stage_index: int) -> nn.Module:
    """The stage's DropBlock (stages 3 and 4 of the original), or Identity where it is off."""
    gamma_scale = config.dropblock_gamma_scales[stage_index]
    if not config.dropblock or gamma_scale == 0:
        return nn.Identity()
    return DropBlock2d(config.dropblock_size, gamma_scale)


def make_stage(
    config: ResNetConfig,
    in_channels: int,
    width: int,
    num_blocks: int,
    stride: int,
    stage_index: int,
    always_project: bool = False,
    last_relu: bool = True,
) -> tuple[nn.Sequential, int]:
    """A ``block_layer``: the first block strides and projects; returns (stage, out_channels).

    ``always_project`` reproduces the original's BigLittleNet layers, which project the first
    block even when shapes already agree (e.g. merge3, 1024 → 1024).
    """
    block_type = Bottleneck if config.bottleneck else BasicBlock
    out_channels = width * block_type.expansion
    drop_block = make_drop_block(config, stage_index)
    blocks: list[nn.Module] = []
    for index in range(num_blocks):
        block_in = in_channels if index == 0 else out_channels
        block_stride = stride if index == 0 else 1
        downsample = None
        if index == 0 and (always_project or block_stride != 1 or block_in != out_channels):
            downsample = projection_shortcut(
                config, block_in, out_channels, block_stride, drop_block
            )
        blocks.append(
            block_type(
                config,
                block_in,
                width,
                block_stride,
                downsample,
                drop_block,
                last_relu=last_relu or index < num_blocks - 1,
            )
        )
    return nn.Sequential(*blocks), out_channels
