"""Brightness, saturation and contrast: ImageNet-C's colour corruptions.

Brightness and saturation go through HSV exactly as the reference does (scikit-image's
``rgb2hsv`` / ``hsv2rgb``, transcribed here for N×3×H×W batches). They are computed in float64
whatever the input dtype: the reference works in float64 and truncates to uint8, and V + 0.1
lands on exact grey levels, where float32 rounding would flip many truncated values by one.
None of them depends on the image size.
"""

from __future__ import annotations

import torch

from .pieces import in_pieces
from .registry import register

BRIGHTNESS_SHIFT = (0.1, 0.2, 0.3, 0.4, 0.5)
"""Amount added to the HSV value channel (clipped to [0, 1])."""
SATURATION_SCALE_SHIFT = ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))
"""(a, b) of S·a + b on the HSV saturation channel (clipped to [0, 1])."""
CONTRAST_FACTOR = (0.4, 0.3, 0.2, 0.1, 0.05)
"""Factor on each channel's deviation from its spatial mean."""


def _hsv_parts(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hue, saturation, value), each N×H×W, of N×3×H×W RGB (see :func:`rgb_to_hsv`)."""
    red, green, blue = rgb.unbind(1)
    value = rgb.amax(1)
    delta = value - rgb.amin(1)
    grey = delta == 0
    safe_delta = torch.where(grey, 1.0, delta)
    saturation = torch.where(grey, 0.0, delta / torch.where(grey, 1.0, value))
    # one division for the channel that holds the maximum (bit-identical to dividing each)
    blue_max, green_max = blue == value, green == value
    numerator = torch.where(blue_max, red - green, torch.where(green_max, blue - red, green - blue))
    offset = torch.where(blue_max, 4.0, torch.where(green_max, 2.0, 0.0))
    hue = numerator.div_(safe_delta).add_(offset)  # offset: exact 0, 2, 4 (float32)
    hue = torch.where(grey, 0.0, torch.remainder(hue.div_(6.0), 1.0))
    return hue, saturation, value


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """N×3×H×W RGB in [0, 1] → HSV in [0, 1], as ``skimage.color.rgb2hsv``.

    Hue follows scikit-image's tie rule: where several channels equal the maximum, blue wins
    over green over red (its later assignments overwrite the earlier ones); grey pixels
    (max = min) get hue and saturation 0.
    """
    return torch.stack(_hsv_parts(rgb), 1)


def _rgb_from_parts(
    hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor
) -> torch.Tensor:
    """N×3×H×W RGB from N×H×W hue, saturation and value (see :func:`hsv_to_rgb`).

    Sector hi = floor(6·h) mod 6 picks each channel from (v, q, p, t): red v, q, p, p, t, v;
    green t, v, v, q, p, p; blue p, p, t, v, v, q (hi = 0 … 5). Selected with ``where`` on
    the sector, which is cheaper than gathering from a stack of the four candidates.
    """
    scaled = hue * 6
    sector = torch.floor(scaled)
    fraction = scaled - sector
    sector = sector.remainder_(6)
    p = value * (1 - saturation)
    q = value * (1 - fraction * saturation)
    t = value * (1 - (1 - fraction) * saturation)
    below_1, below_2, below_3 = sector < 1, sector < 2, sector < 3
    below_4, below_5 = sector < 4, sector < 5
    red = torch.where(
        below_1,
        value,
        torch.where(below_2, q, torch.where(below_4, p, torch.where(below_5, t, value))),
    )
    green = torch.where(below_1, t, torch.where(below_3, value, torch.where(below_4, q, p)))
    blue = torch.where(below_2, p, torch.where(below_3, t, torch.where(below_5, value, q)))
    return torch.stack((red, green, blue), 1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """N×3×H×W HSV → RGB, as ``skimage.color.hsv2rgb`` (sector 6 — hue exactly 1 — is 0)."""
    return _rgb_from_parts(*hsv.unbind(1))


def _in_hsv(images: torch.Tensor, channel: int, scale: float, shift: float) -> torch.Tensor:
    """clip(HSV[channel]·scale + shift) and back to RGB, in float64, returned in the input dtype
    (a CPU batch a few images at a time: the ~45 element-wise steps are memory-bound)."""

    def adjust(piece: torch.Tensor) -> torch.Tensor:
        parts = list(_hsv_parts(piece.double()))
        parts[channel] = (parts[channel] * scale + shift).clamp_(0, 1)
        return _rgb_from_parts(*parts).to(images.dtype)

    return in_pieces(adjust, images)


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

    def scale_deviation(piece: torch.Tensor) -> torch.Tensor:
        means = piece.mean(dim=(2, 3), keepdim=True)
        return (piece - means) * CONTRAST_FACTOR[severity - 1] + means

    return in_pieces(scale_deviation, images)
