"""BigLittleNet as the original's ``resnet_version=2`` (paper §3.1.4, ORIGINAL.md §1.5).

The big branch sees the map at half resolution with n−1 blocks, the little branch at full
resolution with few, thin blocks; they are merged by nearest ×2 upsampling and a sum, then one
more block. Unlike IBM's bL-ResNet, every merge block has a 1×1 conv + BN projection.
"""

from __future__ import annotations

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .blocks import batch_norm, conv, make_stage
from .config import ResNetConfig


class BigLittleStem(nn.Module):
    """The BL stem module that replaces the max-pool (scope ``stage0/pool`` of the original).

    big: 3×3/2 conv + BN; little: 3×3 conv + BN + ReLU → 3×3/2 conv + BN + ReLU → 1×1 conv + BN;
    then ReLU(big + little) → 1×1 conv + BN + ReLU.
    """

    conv_bn_pairs = (
        ("big_conv", "big_bn"),
        ("little_conv1", "little_bn1"),
        ("little_conv2", "little_bn2"),
        ("little_conv3", "little_bn3"),
        ("fuse_conv", "fuse_bn"),
    )
    """Folded by ``fuse_for_inference``."""

    def __init__(self, config: ResNetConfig, channels: int) -> None:
        super().__init__()
        little = channels // config.bl_alpha
        self.big_conv = conv(channels, channels, 3, 2)
        self.big_bn = batch_norm(config, channels)
        self.little_conv1 = conv(channels, little, 3)
        self.little_bn1 = batch_norm(config, little)
        self.little_conv2 = conv(little, little, 3, 2)
        self.little_bn2 = batch_norm(config, little)
        self.little_conv3 = conv(little, channels, 1)
        self.little_bn3 = batch_norm(config, channels)
        self.fuse_conv = conv(channels, channels, 1)
        self.fuse_bn = batch_norm(config, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        big = self.big_bn(self.big_conv(x))
        little = F.relu(self.little_bn1(self.little_conv1(x)), inplace=True)
        little = F.relu(self.little_bn2(self.little_conv2(little)), inplace=True)
        little = self.little_bn3(self.little_conv3(little))
        merged = F.relu(big.add_(little), inplace=True)
        return F.relu(self.fuse_bn(self.fuse_conv(merged)), inplace=True)


class BigLittleStage(nn.Module):
    """One BL stage: big (n−1 blocks, stride 2), little (max(1, n//β − 1) blocks, width f/α),
    little_e (1×1 + BN to 4f), merge (1 block with the stage's stride)."""

    def __init__(
        self,
        config: ResNetConfig,
        in_channels: int,
        width: int,
        num_blocks: int,
        stride: int,
        stage_index: int,
    ) -> None:
        super().__init__()
        self.big, out_channels = make_stage(
            config,
            in_channels,
            width,
            num_blocks - 1,
            2,
            stage_index,
            always_project=True,
            last_relu=False,
        )
        little_blocks = max(1, num_blocks // config.bl_beta - 1)
        self.little, little_out = make_stage(
            config,
            in_channels,
            width // config.bl_alpha,
            little_blocks,
            1,
            stage_index,
            always_project=True,
        )
        self.little_e = nn.Sequential(
            conv(little_out, out_channels, 1), batch_norm(config, out_channels)
        )
        self.merge, _ = make_stage(
            config, out_channels, width, 1, stride, stage_index, always_project=True
        )
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        big = self.big(x)  # first: DropBlock draws its seeds in the original's order
        little = self.little_e(self.little(x))
        return self.merge(F.relu(add_upsampled_(little, big), inplace=True))


@torch.fx.wrap  # one torch.fx node: traced, the add into a view looks unused and is dropped
def add_upsampled_(little: torch.Tensor, big: torch.Tensor) -> torch.Tensor:
    """``little += nearest ×2 upsampling of big``, in place and without the upsampled map.

    Each big pixel is added to its 2×2 block of a view of ``little`` by broadcasting: the same
    sums as ``little + F.interpolate(big, scale_factor=2)``, with no extra map and the memory
    format of ``little``. ``little`` is a BN (or fused conv) output that only this merge reads.
    """
    n, c, h, w = big.shape
    little.view(n, c, h, 2, w, 2).add_(big[:, :, :, None, :, None])
    return little
