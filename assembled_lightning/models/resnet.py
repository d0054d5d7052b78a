"""The one configurable ResNet family: torchvision ResNet, ResNet-D, SE/SK, anti-aliasing,
BigLittleNet and DropBlock, all switched by :class:`~assembled_lightning.models.ResNetConfig`.

The API follows torchvision and timm: ``forward_features``, ``forward_head(x, pre_logits)``,
``reset_classifier``, ``num_features``, ``feature_info``, ``forward_intermediates``; the stem
(with its ReLU a module, ``relu``), ``layer1``..``layer4`` and ``fc`` keep torchvision's names
and order, so torchvision and timm ResNet state dicts load as they are and torchvision's
``IntermediateLayerGetter`` and ``create_feature_extractor`` see the real forward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.fx
from torch import nn

from .base import HEAD_STAGE, Backbone
from .big_little import BigLittleStage, BigLittleStem
from .blocks import ResidualBlock, batch_norm, conv, make_stage
from .config import ResNetConfig
from .layers import BlurPool2d, TFSameMaxPool2d


@torch.fx.wrap  # a leaf of torch.fx graphs: tracing must not branch on the traced shape
def _check_sides(x: torch.Tensor, multiple: int) -> None:
    if x.shape[-2] % multiple or x.shape[-1] % multiple:
        raise ValueError(
            f"BigLittleNet models need input sides divisible by {multiple} (the upsampled big "
            f"branch must match the little one); got {tuple(x.shape[-2:])}. Resize or crop "
            f"to e.g. 224 or 256."
        )


class AssembleResNet(Backbone):
    """ResNet family of the Assembled-CNN paper (arXiv 2001.06268), built from a config."""

    conv_bn_pairs = (("conv1", "bn1"),)
    """Folded by ``fuse_for_inference`` (the deep stem's last conv, when ``conv1`` is one)."""
    feature_stages = (
        ("conv1", "bn1", "relu"),
        ("stem_pool", "layer1"),
        ("layer2",),
        ("layer3",),
        ("layer4",),
    )
    """timm's ResNet maps: the stem's ReLU output (reduction 2, before the pool, the last map
    at that resolution), then each stage's output."""

    def parameter_stages(self) -> list[tuple[str, list[str]]]:
        """torchvision's names: ``stem`` (conv1, bn1 and the stem pool, which holds the
        BigLittleNet stem's convolutions), ``layer1``..``layer4``, then ``head``."""
        layers = [(f"layer{index}", [f"layer{index}"]) for index in range(1, 5)]
        return [("stem", ["conv1", "bn1", "stem_pool"]), *layers, (HEAD_STAGE, ["fc"])]

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
        self.relu = nn.ReLU(inplace=True)
        self.stem_pool = self._stem_pool(config, width)

        channels = width
        feature_channels, reductions = [width], [2]
        reduction = 4  # conv1 and every kind of stem pool stride 2
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
            reduction *= stride
            feature_channels.append(channels)
            reductions.append(reduction)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = channels
        self._describe_features(feature_channels, reductions)
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
        _check_sides(x, self.config.input_multiple)
