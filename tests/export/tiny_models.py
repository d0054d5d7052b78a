"""Tiny versions of every registered architecture for the export tests: the narrowest widths
and fewest blocks each family allows, BatchNorm with random statistics and no zero γ, so that
every branch (SE, SK, blur-pool, BigLittleNet merges) reaches the logits."""

from __future__ import annotations

import torch
from torch import nn

from assembled_lightning.models import MobileNetV1, create_model, get_model_entry

IMAGE_SIZE = 64  # a multiple of 32 (BigLittleNet); 32 is too small for the 5-tap blur-pool


def tiny_overrides(name: str) -> dict[str, object]:
    config = get_model_entry(name).config
    if hasattr(config, "width_multiplier"):
        return {"width_multiplier": 0.25}
    blocks = (2, 2, 2, 1) if getattr(config, "big_little", False) else (1, 1, 1, 1)
    return {"base_width": 8, "stem_width": 8, "block_counts": blocks, "zero_gamma": False}


def randomise_batch_norm(model: nn.Module, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                size = bn.num_features
                bn.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                bn.bias.copy_(torch.randn(size, generator=generator) * 0.2)
                bn.running_mean.copy_(torch.randn(size, generator=generator) * 0.2)
                bn.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
    return model


def tiny_model(name: str, num_classes: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model(name, num_classes=num_classes, **tiny_overrides(name))
    assert isinstance(model, MobileNetV1) or hasattr(model, "layer4")
    return randomise_batch_norm(model, seed).eval()


def images(count: int = 2, seed: int = 1) -> torch.Tensor:
    """Inputs on the scale of mean-subtracted 0..255 pixels, as the model sees real ones."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator) * 255 - 120
