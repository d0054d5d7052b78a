"""Brightness, saturation and contrast: ImageNet-C's colour corruptions.

Brightness and saturation go through HSV exactly as the reference does (scikit-image's
``rgb2hsv`` / ``hsv2rgb``, transcribed here for N×3×H×W batches). They are computed in float64
whatever the input dtype: the reference works in float64 and truncates to uint8, and V + 0.1
lands on exact grey levels, where float32 rounding would flip many truncated values by one.
None of them depends on the image size.
"""

from __future__ import annotations

import torch

from .registry import register

BRIGHTNESS_SHIFT = (0.1, 0.2, 0.3, 0.4, 0.5)
"""Amount added to the HSV value channel (clipped to [0, 1])."""
SATURATION_SCALE_SHIFT = ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))
"""(a, b) of S·a + b on the HSV saturation channel (clipped to [0, 1])."""
CONTRAST_FACTOR = (0.4, 0.3, 0.2, 0.1, 0.05)
"""Factor on each channel's deviation from its spatial mean."""

# hsv2rgb: sector hi = floor(6·h) picks each output channel from (v, q, p, t) (indices 0..3)
_SECTOR_CHANNELS = torch.tensor(
    [
        [0, 3, 2],  # hi 0: (v, t, p)
        [1, 0, 2],  # hi 1: (q, v, p)
        [2, 0, 3],  # hi 2: (p, v, t)
        [2, 1, 0],  # hi 3: (p, q, v)
        [3, 2, 0],  # hi 4: (t, p, v)
        [0, 2, 1],  # hi 5: (v, p, q)
    ]
)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """N×3×H×W RGB in [0, 1] → HSV in [0, 1], as ``skimage.color.rgb2hsv``.

    Hue follows scikit-image's tie rule: where several channels equal the maximum, blue wins
    over green over red (its later assignments overwrite the earlier ones); grey pixels
    (max = min) get hue and saturation 0.
    """
    red, green, blue = rgb.unbind(1)
    value = rgb.amax(1)
    delta = value - rgb.amin(1)
    grey = delta == 0
    safe_delta = torch.where(grey, 1.0, delta)
    saturation = torch.where(grey, 0.0, delta / torch.where(grey, 1.0, value))
    hue = torch.where(
        blue == value,
        4.0 + (red - green) / safe_delta,
        torch.where(green == value, 2.0 + (blue - red) / safe_delta, (green - blue) / safe_delta),
    )
    hue = torch.where(grey, 0.0, torch.remainder(hue / 6.0, 1.0))
    return torch.stack((hue, saturation, value), 1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """N×3×H×W HSV → RGB, as ``skimage.color.hsv2rgb`` (sector 6 — hue exactly 1 — is 0)."""
    hue, saturation, value = hsv.unbind(1)
    sector = torch.floor(hue * 6)
    fraction = hue * 6 - sector
    p = value * (1 - saturation)
    q = value * (1 - fraction * saturation)
    t = value * (1 - (1 - fraction) * saturation)
    candidates = torch.stack((value, q, p, t), 1)
    table = _SECTOR_CHANNELS.to(hsv.device)
    index = table[sector.long().remainder(6)].permute(0, 3, 1, 2)
    return candidates.gather(1, index)


def _in_hsv(images: torch.Tensor, channel: int, scale: float, shift: float) -> torch.Tensor:
    """clip(HSV[channel]·scale + shift) and back to RGB, in float64, returned in the input dtype."""
    hsv = rgb_to_hsv(images.double())
    adjusted = (hsv[:, channel] * scale + shift).clamp(0, 1)
    hsv = torch.cat((hsv[:, :channel], adjusted.unsqueeze(1), hsv[:, channel + 1 :]), 1)
    return hsv_to_rgb(hsv).to(images.dtype)


@register("brightness", "weather")
def brightness(
    images: torch.Tensor, severity: int, generator: torch.Generator | None
) -> torch.Tensor:
    """V + c in HSV (hue and saturation kept): a brighter scene, not a grey veil."""
    return _in_hsv(images, 2, 1.0, BRIGHTNESS_SHIFT[severity - 1])


@register("saturate", "digital")
def saturate(
    images: torch.Tensor, severity: int, generator: torch.Generator | None
) -> torch.Tensor:
    """S·a + b in HSV: washed-out colours at severities 1–2, oversaturated ones at 3–5."""
    scale, shift = SATURATION_SCALE_SHIFT[severity - 1]
    return _in_hsv(images, 1, scale, shift)


@register("contrast", "digital")
def contrast(
    images: torch.Tensor, severity: int, generator: torch.Generator | None
) -> torch.Tensor:
    """(x − m)·c + m with m each image's per-channel spatial mean (not a grey level)."""
    means = images.mean(dim=(2, 3), keepdim=True)
    return (images - means) * CONTRAST_FACTOR[severity - 1] + means
