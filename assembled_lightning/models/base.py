"""What every backbone of the package shares: initialisation, the head and the timm-style API."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.fx
from torch import nn

from .features import FeatureIndices, FeatureInfo, feature_indices
from .layers import set_dropblock_keep_prob

HEAD_STAGE = "head"
"""The classifier's stage in ``Backbone.parameter_stages``: always the last one."""

# TF's truncated normal keeps ±2 std and divides the std by this to restore the variance.
_TF_TRUNCATED_NORMAL_STD = 0.87962566103423978


@torch.fx.wrap  # a leaf of torch.fx graphs: tracing must not branch on the traced shape
def _check_channels(x: torch.Tensor, channels: int) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"expected input of shape [N, {channels}, H, W], got {tuple(x.shape)}")


class Backbone(nn.Module):
    """Base of the package's classifiers.

    Subclasses build the layers, set ``num_features``, ``feature_stages`` and ``feature_info``;
    this class runs the stages (``forward_features``, ``forward_intermediates``), owns ``fc``
    and provides ``forward_head``, ``reset_classifier``, ``get_classifier``, the weight
    initialisation chosen by ``config.init`` and the DropBlock keep-prob setter.
    """

    config: Any
    num_features: int
    feature_stages: tuple[tuple[str, ...], ...]
    """Per feature map, the names of the modules that compute it from the previous map (from the
    image for the first), in forward order; the last one's output is the map. Names, not modules,
    so that ``fuse_for_inference`` and pruning, which replace modules, are seen."""
    feature_info: FeatureInfo

    def _make_classifier(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """'tf': the original's initialisers (fan-in truncated normal with scale 1, Glorot-uniform
        dense with zero bias); 'torchvision': Kaiming-normal fan-out convs, default Linear."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                if self.config.init == "tf":
                    fan_in = module.in_channels // module.groups * math.prod(module.kernel_size)
                    std = math.sqrt(1.0 / fan_in) / _TF_TRUNCATED_NORMAL_STD
                    nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
                else:
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
                module.reset_running_stats()
            elif isinstance(module, nn.Linear):
                self._init_linear(module)

    def _init_linear(self, linear: nn.Linear) -> None:
        if self.config.init == "tf":
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
        else:
            linear.reset_parameters()

    def set_dropblock_keep_prob(self, keep_prob: float) -> int:
        """Set DropBlock's keep probability everywhere (scheduled per step while training)."""
        return set_dropblock_keep_prob(self, keep_prob)

    def _describe_features(self, channels: Sequence[int], reductions: Sequence[int]) -> None:
        self.feature_info = FeatureInfo(
            [
                {"num_chs": c, "reduction": r, "module": stage[-1]}
                for c, r, stage in zip(channels, reductions, self.feature_stages, strict=True)
            ]
        )

    def _run_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        for name in self.feature_stages[index]:
            x = self.get_submodule(name)(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, ``[N, num_features, H/32, W/32]``."""
        self.check_input(x)
        for index in range(len(self.feature_stages)):
            x = self._run_stage(index, x)
        return x

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: FeatureIndices = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's API: ``(last map, [the maps of feature_info picked by indices])``.

        ``indices``: None = all maps, an int n = the last n, a sequence = those (negative from
        the end). ``stop_early`` stops after the last picked map, which is then also the first
        result (else it is ``forward_features(x)``); ``intermediates_only`` returns only the
        list and never runs later stages. ``norm`` is accepted for timm compatibility: these
        backbones have no final norm layer.
        """
        if output_fmt != "NCHW":
            raise ValueError(
                f"output_fmt must be 'NCHW' (the only layout here), got {output_fmt!r}"
            )
        take = feature_indices(len(self.feature_stages), indices)
        self.check_input(x)
        last = take[-1] if stop_early or intermediates_only else len(self.feature_stages) - 1
        intermediates = []
        for index in range(last + 1):
            x = self._run_stage(index, x)
            if index in take:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(
        self, indices: FeatureIndices = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """timm's API: replace the stages after the last of ``indices`` (and, with
        ``prune_head``, the classifier) by parameter-free ``nn.Identity``; returns the indices.

        ``prune_norm`` is accepted for timm compatibility (no final norm layer here).
        """
        take = feature_indices(len(self.feature_stages), indices)
        for stage in self.feature_stages[take[-1] + 1 :]:
            for name in stage:
                self.set_submodule(name, nn.Identity())
        if prune_head:
            self.reset_classifier(0)
        return list(take)

    def parameter_stages(self) -> list[tuple[str, list[str]]]:
        """Named stages in forward order, each with the names of the modules that own its
        parameters, the classifier last as ``head`` (as timm's ``group_matcher``): what
        fine-tuning freezes, unfreezes or gives a layer-wise LR. Every parameter belongs to
        exactly one stage. By default one stage per feature map (``stem``, ``stage1``, ...);
        families with conventional stage names override it."""
        names = ["stem", *(f"stage{index}" for index in range(1, len(self.feature_stages)))]
        stages = [
            (name, list(modules)) for name, modules in zip(names, self.feature_stages, strict=True)
        ]
        return [*stages, (HEAD_STAGE, ["fc"])]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, then the classifier unless ``pre_logits`` (the embedding)."""
        x = x.mean((2, 3))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier (e.g. for fine-tuning); 0 removes it."""
        reference = next(self.parameters())
        self.config = self.config.replace(num_classes=num_classes)
        self.fc: nn.Module = self._make_classifier(num_classes)
        if isinstance(self.fc, nn.Linear):
            self._init_linear(self.fc)
        self.fc.to(device=reference.device, dtype=reference.dtype)

    def check_input(self, x: torch.Tensor) -> None:
        _check_channels(x, self.config.in_channels)
