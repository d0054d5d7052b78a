"""The one configurable ResNet family: torchvision ResNet, ResNet-D, SE/SK, anti-aliasing,
BigLittleNet and DropBlock, all switched by :class:`~assembled_lightning.models.ResNetConfig`.

The API follows torchvision and timm: ``forward_features``, ``forward_head(x, pre_logits)``,
``reset_classifier``, ``num_features``; the stem, ``layer1``..``layer4`` and ``fc`` keep
torchvision's names so torchvision and timm ResNet state dicts load as they are.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import Backbone
from .big_little import BigLittleStage, BigLittleStem
from .blocks import ResidualBlock, batch_norm, conv, make_stage
from .config import ResNetConfig
from .layers import BlurPool2d, TFSameMaxPool2d


class AssembleResNet(Backbone):
    """ResNet family of the Assembled-CNN paper (arXiv 2001.06268), built from a config."""

    conv_bn_pairs = (("conv1", "bn1"),)
    """Folded by ``fuse_for_inference`` (the deep stem's last conv, when ``conv1`` is one)."""

    def __init__(self, config: ResNetConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = config or ResNetConfig()
        if overrides:
            config = config.replace(**overrides)
        self.config = config
        width = config.base_width

        if config.stem == "deep":
            self.conv1: nn.Module = nn.Sequential(
                conv(config.in_channels, config.stem_width, 3, 2),
                batch_norm(config, config.stem_width),
                nn.ReLU(inplace=True),
                conv(config.stem_width, config.stem_width, 3),
                batch_norm(config, config.stem_width),
                nn.ReLU(inplace=True),
                conv(config.stem_width, width, 3),
            )
        else:
            self.conv1 = nn.Conv2d(config.in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = batch_norm(config, width)
        self.stem_pool = self._stem_pool(config, width)

        channels = width
        stages: list[nn.Module] = []
        for index, (blocks, stride) in enumerate(
            zip(config.stage_blocks, config.stage_strides, strict=True)
        ):
            stage_width = width * 2**index
            if config.big_little and index < 3:
                stage: nn.Module = BigLittleStage(
                    config, channels, stage_width, blocks, stride, index
                )
                channels = stage.out_channels  # type: ignore[assignment]
            else:
                stage, channels = make_stage(
                    config,
                    channels,
                    stage_width,
                    blocks,
                    stride,
                    index,
                    always_project=config.big_little,
                )
            stages.append(stage)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = channels
        self.fc = self._make_classifier(config.num_classes)
        self.reset_parameters()

    @staticmethod
    def _stem_pool(config: ResNetConfig, width: int) -> nn.Module:
        if config.big_little:
            return BigLittleStem(config, width)
        if "max" in config.anti_alias:
            return nn.Sequential(
                nn.MaxPool2d(3, 1, 1), BlurPool2d(width, config.anti_alias_filter_size, 2)
            )
        if config.stem_pool_padding == "tf_same":
            return TFSameMaxPool2d(3, 2)
        return nn.MaxPool2d(3, 2, 1)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The chosen initialisation, then zero-γ on each residual branch's last BN (§3.2)."""
        super().reset_parameters()
        if self.config.zero_gamma:
            for module in self.modules():
                if isinstance(module, ResidualBlock):
                    nn.init.zeros_(module.last_bn().weight)

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        multiple = self.config.input_multiple
        if x.shape[-2] % multiple or x.shape[-1] % multiple:
            raise ValueError(
                f"BigLittleNet models need input sides divisible by {multiple} (the upsampled big "
                f"branch must match the little one); got {tuple(x.shape[-2:])}. Resize or crop "
                f"to e.g. 224 or 256."
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, ``[N, num_features, H/32, W/32]``."""
        self.check_input(x)
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = self.stem_pool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)
