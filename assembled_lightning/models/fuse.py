"""Deployment: fold every BatchNorm into the convolution before it (the way to deploy a model).

``fuse_for_inference(model)`` follows timm's ``reparameterize_model(model, inplace=False)``: a
fused copy by default, the model itself with ``inplace=True``; the folding is that of
torchvision's ``fuse_conv_bn_eval``: in eval mode ``bn(conv(x))`` is a conv with weight
``W·γ/√(σ²+ε)`` and bias ``β + (b − μ)·γ/√(σ²+ε)``, so the BN becomes an ``nn.Identity``.

A module names the BNs that read only a conv's output in a ``conv_bn_pairs`` class attribute of
(conv, BN) attribute names: a conv given as an ``nn.Sequential`` stands for its last module
(ResNet-D's deep stem), and a pair whose BN is absent or an ``nn.Identity`` in this configuration
(the bottleneck's ``bn2`` next to a Selective Kernel) is skipped. In an ``nn.Sequential``, a conv
directly followed by a BN is a pair. Every BN of the package's models follows a conv, so a fused
model has none left. Nothing else is folded: the pools before the shortcuts' 1×1 convs and the
blur-pools before the bottlenecks' last 1×1 are linear too, but merging one into the 1×1 makes a
2×2 or 3×3 conv with 4–9 times its multiply-adds.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn


def fuse_for_inference(model: nn.Module, inplace: bool = False) -> nn.Module:
    """An eval-mode model with every (conv, BN) pair folded into one conv with a bias.

    The logits equal the unfused model's in eval mode up to float rounding (≤ 1e-5 in fp32 in
    the tests); the model still exports with ``torch.export`` and compiles. It is for inference
    only: its BNs are gone, so training it (or loading an unfused state dict) is not the
    original model any more. The input model is left as it is unless ``inplace``.
    """
    fused = model if inplace else copy.deepcopy(model)
    for module in list(fused.modules()):
        for conv_name, bn_name in _conv_bn_pairs(module):
            bn = getattr(module, bn_name, None)
            if not isinstance(bn, nn.BatchNorm2d):
                continue  # already fused, or no such BN in this configuration
            conv = _last_module(getattr(module, conv_name))
            if not isinstance(conv, nn.Conv2d):
                raise TypeError(
                    f"{type(module).__name__}.{conv_name} is a {type(conv).__name__}, not the "
                    f"Conv2d that {type(module).__name__}.conv_bn_pairs says {bn_name} follows"
                )
            _fold_into(conv, bn)
            setattr(module, bn_name, nn.Identity())
    return fused.eval()


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Give ``conv`` the weight and bias that compute the eval-mode ``bn(conv(x))``."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(
            f"cannot fold {bn}: it keeps no running statistics (track_running_stats=False), so "
            "its eval-mode output depends on the batch"
        )
    if bn.num_features != conv.out_channels:
        raise ValueError(f"cannot fold {bn} into {conv}: their channel counts differ")
    weight = conv.weight
    dtype = torch.promote_types(weight.dtype, torch.float32)
    scale = torch.rsqrt(bn.running_var.to(dtype) + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.to(dtype)
    bias = -bn.running_mean.to(dtype)
    if conv.bias is not None:
        bias = bias + conv.bias.to(dtype)
    bias = bias * scale
    if bn.bias is not None:
        bias = bias + bn.bias.to(dtype)
    conv.weight = nn.Parameter((weight.to(dtype) * scale.view(-1, 1, 1, 1)).to(weight.dtype))
    conv.bias = nn.Parameter(bias.to(weight.dtype))


def _conv_bn_pairs(module: nn.Module) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = list(getattr(module, "conv_bn_pairs", ()))
    if isinstance(module, nn.Sequential):
        pairs += [
            (first, second)
            for (first, conv), (second, bn) in itertools.pairwise(module.named_children())
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
        ]
    return pairs


def _last_module(module: nn.Module) -> nn.Module:
    """The module whose output is ``module``'s: the last one of an ``nn.Sequential``."""
    while isinstance(module, nn.Sequential) and len(module):
        module = module[-1]
    return module
