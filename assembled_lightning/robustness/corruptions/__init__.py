"""The 19 ImageNet-C corruptions (Hendrycks & Dietterich, ICLR 2019) as batched torch ops.

``corrupt(images, name, severity)`` takes float N×3×H×W images in [0, 1] on any device and
returns the same shape in [0, 1], every image of the batch with its own random draws (from
``generator`` when given, so a run is reproducible). The severity constants are the reference
generator's (``make_imagenet_c.py``, 224-px table); the README's "Robustness"
section lists every corruption with its measured difference from the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

# each module registers its corruptions
from . import blur, color, digital, elastic, fog, frost, noise, snow, spatter  # noqa: F401
from .registry import Corruption, registered

BENCHMARK_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
"""The 15 corruptions of the official ImageNet-C benchmark, in their usual order."""

EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
"""The 4 held-out ("validation") corruptions: not in the official mCE, in the paper's."""

CORRUPTIONS: tuple[str, ...] = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)


def get_corruption(name: str) -> Corruption:
    """The registered corruption ``name``; an unknown name lists the known ones."""
    try:
        return registered()[name]
    except KeyError:
        raise ValueError(
            f"unknown corruption {name!r}; choose one of: {', '.join(CORRUPTIONS)}"
        ) from None


def resolve_corruptions(names: Sequence[str] | None) -> list[str]:
    """``names`` checked (a typo fails listing the known ones; no repeats); None: all 19."""
    resolved = list(CORRUPTIONS if names is None else names)
    for name in resolved:
        get_corruption(name)
    if len(set(resolved)) != len(resolved) or not resolved:
        raise ValueError(f"corruptions must be distinct names, at least one, got {resolved}")
    return resolved


def resolve_severities(severities: Sequence[int]) -> list[int]:
    """``severities`` checked: distinct values of 1..5, at least one."""
    values = list(severities)
    bad = [s for s in values if isinstance(s, bool) or s not in SEVERITIES]
    if bad or not values or len(set(values)) != len(values):
        raise ValueError(f"severities must be distinct values of 1..5, got {values}")
    return values


def quantize_like_release(images: torch.Tensor, jpeg_quality: int | None = None) -> torch.Tensor:
    """Float [0, 1] → uint8 by truncation, as the reference saves (``np.uint8(x · 255)``), then
    optionally a JPEG round trip at ``jpeg_quality`` (the released files: 85)."""
    quantized = (images * 255).clamp_(0, 255).to(torch.uint8)
    if jpeg_quality is None:
        return quantized
    return digital.jpeg_roundtrip(quantized, jpeg_quality)


def corrupt(
    images: torch.Tensor,
    name: str,
    severity: int,
    *,
    generator: torch.Generator | None = None,
    **inputs: Any,
) -> torch.Tensor:
    """Corrupt a batch: float N×3×H×W in [0, 1] → same shape and dtype (contiguous), in [0, 1].

    Args:
        images: The batch (a single 3×H×W image is accepted too), on any device.
        name: One of :data:`CORRUPTIONS`.
        severity: 1 (mildest) … 5.
        generator: Source of every random draw (on the images' device); None: torch's global
            generator.
        inputs: Pins of a corruption's random parts, e.g. ``plasma=`` (fog: H×W in [0, 1])
            or ``texture=`` (frost: 3×H×W in [0, 1]); ``frost_textures=`` names a folder of
            frost images.
    """
    corruption = get_corruption(name)
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise ValueError(f"severity must be one of 1, 2, 3, 4, 5, got {severity!r}")
    unknown = set(inputs) - set(corruption.inputs)
    if unknown:
        accepted = ", ".join(corruption.inputs) or "none"
        raise TypeError(f"{name} takes no input(s) {sorted(unknown)}; it accepts: {accepted}")
    single = images.dim() == 3
    batch = images.unsqueeze(0) if single else images
    if batch.dim() != 4 or batch.shape[1] != 3:
        raise ValueError(f"expected N×3×H×W (or 3×H×W) images, got shape {tuple(images.shape)}")
    if not batch.is_floating_point():
        raise TypeError(f"expected float images in [0, 1], got {batch.dtype}")
    if generator is not None and generator.device != batch.device:
        raise ValueError(
            f"the generator is on {generator.device} but the images on {batch.device}: "
            "make it with torch.Generator(device=images.device)"
        )
    work = batch if batch.dtype in (torch.float32, torch.float64) else batch.float()
    # one copy of a channels-last (or otherwise strided) batch: the corruptions are written
    # for contiguous N×C×H×W (on a channels-last CPU batch zoom_blur's bilinear zooms measured
    # 2.1× slower, the whole sweep 1.1×)
    work = work.contiguous()
    out = corruption.apply(work, severity, generator, **inputs).clamp_(0, 1)
    out = out.to(batch.dtype).contiguous()  # pixelate's products and the JPEG codec transpose
    return out.squeeze(0) if single else out


__all__ = [
    "BENCHMARK_CORRUPTIONS",
    "CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "SEVERITIES",
    "Corruption",
    "corrupt",
    "get_corruption",
    "quantize_like_release",
    "resolve_corruptions",
    "resolve_severities",
]
