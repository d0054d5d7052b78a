"""MobileNet-V1 and SE-MobileNet-V1, the paper's second backbone (Table 9, M0–M8).

The original repository has no MobileNet code (ORIGINAL.md §1.9), so this follows Howard et al.
2017 for the network, with SE after each pointwise conv's BN + ReLU (reduction 16 or 2 as in
Table 9) and DropBlock, as in the ResNets, after every BN of the 14×14 and 7×7 stages.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .base import Backbone
from .config import BN_MOMENTUM_HINT, bounded, validate_fields
from .layers import DropBlock2d, SqueezeExcite

# (output channels, stride) of the 13 depthwise-separable blocks (Howard et al. 2017, Table 1).
_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
# Block index -> DropBlock stage: the 14×14 blocks (stage 0, γ-scale 0.25) and 7×7 (stage 1, 1.0).
_DROPBLOCK_STAGE = {**dict.fromkeys(range(5, 11), 0), 11: 1, 12: 1}
# The blocks that end a resolution (the next one strides, or none follows): their outputs are
# the feature maps, at reductions 2, 4, 8, 16, 32 (as timm's MobileNet-V1 stages).
_LAST_AT_RESOLUTION = tuple(
    index for index in range(len(_BLOCKS)) if index + 1 == len(_BLOCKS) or _BLOCKS[index + 1][1] > 1
)


def _feature_stages() -> tuple[tuple[str, ...], ...]:
    """The stem and block 0 (both at reduction 2), then the blocks of each later resolution."""
    stages, first = [], 0
    for last in _LAST_AT_RESOLUTION:
        stages.append(tuple(f"blocks.{index}" for index in range(first, last + 1)))
        first = last + 1
    stages[0] = ("conv_stem", "bn_stem", "relu_stem", *stages[0])
    return tuple(stages)


@dataclass(frozen=True)
class MobileNetConfig:
    """Switches of (SE-)MobileNet-V1 (paper §4, Table 9)."""

    num_classes: int = bounded(1000, ge=0)
    in_channels: int = bounded(3, ge=1)
    width_multiplier: float = bounded(1.0, gt=0)
    """Channel multiplier α of MobileNet-V1; channels are rounded to multiples of 8."""
    se_reduction: int | None = bounded(None, ge=1)
    """SE reduction after each pointwise conv; None disables SE (Table 9: r=16 and r=2)."""
    dropblock: bool = False
    """DropBlock after every BN of the 14×14 and 7×7 blocks (Table 9, M8)."""
    dropblock_size: int = bounded(7, ge=1)
    dropblock_gamma_scales: tuple[float, float] = bounded((0.25, 1.0), ge=0)
    """γ multipliers of the 14×14 and 7×7 stages, as the ResNets' stages 3 and 4."""
    bn_eps: float = bounded(1e-5, gt=0)
    bn_momentum: float = bounded(0.003, ge=0.0, le=0.5, hint=BN_MOMENTUM_HINT)
    """PyTorch convention (1 − the original's 0.997 decay)."""
    init: Literal["tf", "torchvision"] = "tf"

    def __post_init__(self) -> None:
        validate_fields(self)  # types, the allowed strings and the ranges declared above

    def channels(self, base: int) -> int:
        return max(8, int(base * self.width_multiplier + 4) // 8 * 8)

    def replace(self, **changes: Any) -> MobileNetConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            allowed = ", ".join(sorted(f.name for f in dataclasses.fields(self)))
            raise TypeError(
                f"unknown MobileNetConfig field(s) {sorted(unknown)}; allowed: {allowed}"
            )
        return dataclasses.replace(self, **changes)


class DepthwiseSeparable(nn.Module):
    """3×3 depthwise conv + BN + ReLU → 1×1 pointwise conv + BN + ReLU (→ SE)."""

    conv_bn_pairs = (("conv_dw", "bn_dw"), ("conv_pw", "bn_pw"))
    """Folded by ``fuse_for_inference``."""

    def __init__(
        self,
        config: MobileNetConfig,
        in_channels: int,
        out_channels: int,
        stride: int,
        drop_block: nn.Module,
    ) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(
            in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False
        )
        self.bn_dw = nn.BatchNorm2d(in_channels, eps=config.bn_eps, momentum=config.bn_momentum)
        self.conv_pw = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn_pw = nn.BatchNorm2d(out_channels, eps=config.bn_eps, momentum=config.bn_momentum)
        self.se: nn.Module = (
            SqueezeExcite(out_channels, config.se_reduction)
            if config.se_reduction
            else nn.Identity()
        )
        self.drop_block = drop_block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.drop_block(self.bn_dw(self.conv_dw(x))), inplace=True)
        x = F.relu(self.drop_block(self.bn_pw(self.conv_pw(x))), inplace=True)
        return self.se(x)


class MobileNetV1(Backbone):
    """MobileNet-V1 / SE-MobileNet-V1 with the timm-style model API."""

    conv_bn_pairs = (("conv_stem", "bn_stem"),)
    """Folded by ``fuse_for_inference``."""
    feature_stages = _feature_stages()

    def __init__(self, config: MobileNetConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = config or MobileNetConfig()
        if overrides:
            config = config.replace(**overrides)
        self.config = config
        stem = config.channels(32)
        self.conv_stem = nn.Conv2d(config.in_channels, stem, 3, 2, 1, bias=False)
        self.bn_stem = nn.BatchNorm2d(stem, eps=config.bn_eps, momentum=config.bn_momentum)
        self.relu_stem = nn.ReLU(inplace=True)
        blocks: list[nn.Module] = []
        drop_blocks: dict[int, nn.Module] = {}
        channels = stem
        for index, (base, stride) in enumerate(_BLOCKS):
            stage = _DROPBLOCK_STAGE.get(index)
            drop_block: nn.Module = nn.Identity()
            if config.dropblock and stage is not None and config.dropblock_gamma_scales[stage] > 0:
                if stage not in drop_blocks:
                    drop_blocks[stage] = DropBlock2d(
                        config.dropblock_size, config.dropblock_gamma_scales[stage]
                    )
                drop_block = drop_blocks[stage]
            out = config.channels(base)
            blocks.append(DepthwiseSeparable(config, channels, out, stride, drop_block))
            channels = out
        self.blocks = nn.Sequential(*blocks)
        self.num_features = channels
        self._describe_features(
            [config.channels(_BLOCKS[last][0]) for last in _LAST_AT_RESOLUTION],
            [2 * math.prod(s for _, s in _BLOCKS[: last + 1]) for last in _LAST_AT_RESOLUTION],
        )
        self.fc = self._make_classifier(config.num_classes)
        self.reset_parameters()
