"""Pixelate and JPEG compression: ImageNet-C's two corruptions that work on 8-bit images.

The reference applies both to the PIL image of the uint8 crop; ``corrupt`` hands us floats, so
both first quantise as the reference's own pipeline does, by truncation (``floor(255·x)``, exact
for images that are ``uint8 / 255``), and return ``uint8 / 255``.

* ``pixelate`` reproduces PIL's ``Image.resize(..., BOX)`` bit for bit (Pillow's fixed-point
  weights and uint8 rounding after each pass) as one exact float64 matrix product per axis, on
  any device.
* ``jpeg_compression`` runs libjpeg through PIL on the CPU, the reference codec itself (a
  GPU batch goes to the CPU and back).
"""

from __future__ import annotations

import functools
import io

import numpy as np
import torch
from PIL import Image

from .pieces import in_pieces
from .registry import register

PIXELATE_SCALE = (0.6, 0.5, 0.4, 0.3, 0.25)
"""Side of the intermediate image as a fraction of the input's (224 → 134, 112, 89, 67, 56)."""
JPEG_QUALITY = (25, 18, 15, 10, 7)
"""PIL's JPEG ``quality`` (libjpeg's scaling of the standard quantisation tables)."""

_PRECISION_BITS = 22
"""PIL's fixed-point resampling: coefficients are integers scaled by 2**22 (32 − 8 − 2 bits)."""


def _quantise(images: torch.Tensor) -> torch.Tensor:
    """Float in [0, 1] → integer levels 0..255 (still float) by truncation, as ``np.uint8``."""
    return torch.floor(images * 255)


@functools.lru_cache(maxsize=64)
def _box_coefficients(in_size: int, out_size: int) -> torch.Tensor:
    """PIL's fixed-point BOX weights for one axis: an out×in float64 matrix of integers.

    PIL's BOX filter (support 0.5, widened by the ratio when shrinking) gives weight 1 to every
    input pixel whose centre lies in (centre − s/2, centre + s/2] of the output pixel, with
    s = max(in/out, 1), normalises the row to sum 1 and rounds each weight half-up to
    2**-22. So a shrink averages whole pixels (1 or 2 at 224 → 134), it does not weigh partial
    coverage, and an enlargement copies the nearest pixel.
    """
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 0.5 * filter_scale
    reciprocal = 1.0 / filter_scale  # PIL multiplies by it: the same rounding at box edges
    weights = np.zeros((out_size, in_size))
    for out_index in range(out_size):
        centre = (out_index + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        stop = min(int(centre + support + 0.5), in_size)
        offsets = (np.arange(first, stop) - centre + 0.5) * reciprocal
        row = ((offsets > -0.5) & (offsets <= 0.5)).astype(np.float64)
        total = row.sum()
        if total != 0.0:
            row /= total
        weights[out_index, first:stop] = np.floor(0.5 + row * (1 << _PRECISION_BITS))
    return torch.from_numpy(weights)


def _resample_axis(levels: torch.Tensor, weights: torch.Tensor, dim: int) -> torch.Tensor:
    """One PIL pass along ``dim`` (-1: width, -2: height) on integer levels, rounded to uint8.

    The float64 product is exact: every partial sum is an integer below 2**53.
    """
    moved = levels.movedim(dim, -1)
    total = moved @ weights.to(levels.device).T + (1 << (_PRECISION_BITS - 1))
    rounded = torch.floor(total / (1 << _PRECISION_BITS)).clamp_(0, 255)
    return rounded.movedim(-1, dim)


def _box_resize(levels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``Image.resize((width, height), BOX)``: the horizontal pass first, as every Pillow up to
    12 (the reference's) does; an axis whose size does not change is left alone (PIL skips that
    pass). Pillow 13 runs the vertical pass first when both sides shrink and the height loses
    more than twice as many pixels as the width (images over ~2× taller than wide): as each
    pass rounds to uint8, its results then differ from these by 1 level at some pixels."""
    if levels.shape[-1] != width:
        levels = _resample_axis(levels, _box_coefficients(levels.shape[-1], width), -1)
    if levels.shape[-2] != height:
        levels = _resample_axis(levels, _box_coefficients(levels.shape[-2], height), -2)
    return levels


@register("pixelate", "digital", reference_size=224)
def pixelate(
    images: torch.Tensor, severity: int, generator: torch.Generator | None
) -> torch.Tensor:
    """PIL BOX resize to int(W·c)×int(H·c), then BOX back to W×H.

    The reference hard-codes 224 (``int(224·c)`` and back to 224×224); other sizes use their own
    sides (at least 1 px).
    """
    height, width = images.shape[-2:]
    scale = PIXELATE_SCALE[severity - 1]

    def down_and_up(piece: torch.Tensor) -> torch.Tensor:
        levels = _quantise(piece).double()
        small = _box_resize(levels, max(int(height * scale), 1), max(int(width * scale), 1))
        return (_box_resize(small, height, width) / 255).to(images.dtype)

    return in_pieces(down_and_up, images)


def jpeg_roundtrip(images: torch.Tensor, quality: int) -> torch.Tensor:
    """uint8 N×3×H×W → the same images JPEG-encoded at PIL ``quality`` and decoded, uint8 on the
    input's device.

    PIL's libjpeg with its defaults (4:2:0 chroma subsampling, baseline, islow DCT), one image
    at a time: a codec has no batched form. ``torchvision.io.encode_jpeg``/``decode_jpeg`` give
    the same bytes on CPU but are deprecated since torchvision 0.29, and their GPU path (nvJPEG)
    is a different encoder.
    """
    decoded = []
    for image in images.cpu().permute(0, 2, 3, 1).numpy():
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as compressed:
            decoded.append(np.asarray(compressed.convert("RGB")))
    return torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).to(images.device)


@register("jpeg_compression", "digital")
def jpeg_compression(
    images: torch.Tensor, severity: int, generator: torch.Generator | None
) -> torch.Tensor:
    """The truncated uint8 image through a JPEG round trip at quality q (see
    :func:`jpeg_roundtrip`); a GPU batch goes to the CPU and back."""
    levels = _quantise(images).to(torch.uint8)
    return jpeg_roundtrip(levels, JPEG_QUALITY[severity - 1]).to(images.dtype) / 255
