"""The original's AutoAugment on uint8 tensors (ORIGINAL.md §3.1, §3.3).

The original (master:preprocessing/autoaugment.py) adapts the TPU AutoAugment code; this module
re-implements its ops, level rules and two policies — ``imagenet`` (from scratch) and ``good``
(fine-tuning) — for ``[3, H, W]`` or ``[N, 3, H, W]`` uint8 tensors on any device, with the
original's float32 arithmetic, uint8 truncation and fill value 128. Quirks of the original are
kept on purpose, because they are what the paper's models were trained with:

* ``Contrast`` blends towards the constant ``min(H·W / 256, 255)``: the original divides the
  *sum* of the grayscale histogram (the pixel count) by 256 instead of averaging grey levels,
  so a 224×224 image is blended towards 196 whatever its content.
* ``TranslateX/Y`` move by ``level / 10 · 250`` pixels: from level 9 (225 px) a 224-pixel image
  is entirely replaced by the fill value.
* ``Posterize`` shifts by ``8 - bits`` clamped to 7 (TF's shift ops clamp), so 0 bits keeps
  one bit; ``Solarize`` thresholds above 255 leave the image unchanged.

Sharpness sums the nine products of its 3×3 kernel one at a time in row-major order in float32,
as TF's CPU depthwise kernel does (built without FMA), because the result is truncated to uint8;
affine ops round source coordinates half away from zero (``std::round``) as TF's
projective-transform kernel. Cosines and sines of Rotate may differ from TF's by an ulp, which
can move a pixel whose source coordinate lies within ~1e-6 of a rounding tie.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

MAX_LEVEL = 10.0
"""Levels in the policies run 0..10 (the original's ``_MAX_LEVEL``)."""
REPLACE = 128
"""Fill value of the affine ops and Cutout (the original's ``replace_value``)."""
TRANSLATE_CONST = 250
"""Pixels of a level-10 translation (the original's hparams, both policies)."""
CUTOUT_CONST = 100
"""Half side in pixels of a level-10 Cutout square (the original's hparams, both policies)."""

Policy = Literal["imagenet", "good"]
Operation = tuple[str, float, int]
SubPolicy = tuple[Operation, Operation]

IMAGENET_POLICY: tuple[SubPolicy, ...] = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, 4), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, 7)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, 2)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, 8), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, 2)),
    (("Equalize", 0.0, 7), ("Equalize", 0.8, 8)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, 8)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, 9)),
    (("Color", 0.4, 0), ("Equalize", 0.6, 3)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
)
"""The original's ``imagenet_policies()``: the AutoAugment ImageNet policy, 25 sub-policies."""

GOOD_POLICY: tuple[SubPolicy, ...] = (
    # exp0_0 .. exp0_3
    (("Invert", 0.1, 7), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, 8), ("Equalize", 0.9, 2)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 3)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, 2), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, 8), ("Invert", 0.1, 3)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 1)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.0, 2)),
    (("TranslateY", 0.7, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, 0), ("Solarize", 0.4, 3)),
    (("Equalize", 0.7, 5), ("Invert", 0.1, 3)),
    (("TranslateY", 0.7, 9), ("TranslateY", 0.7, 9)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 1)),
    (("TranslateY", 0.8, 9), ("TranslateY", 0.9, 9)),
    (("AutoContrast", 0.8, 0), ("TranslateY", 0.7, 9)),
    (("TranslateY", 0.2, 7), ("Color", 0.9, 6)),
    (("Equalize", 0.7, 6), ("Color", 0.4, 9)),
    # exp1_0 .. exp1_6
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, 5), ("Equalize", 0.5, 1)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Brightness", 0.3, 7), ("AutoContrast", 0.5, 8)),
    (("AutoContrast", 0.9, 4), ("AutoContrast", 0.5, 6)),
    (("Solarize", 0.3, 5), ("Equalize", 0.6, 5)),
    (("TranslateY", 0.2, 4), ("Sharpness", 0.3, 3)),
    (("Brightness", 0.0, 8), ("Color", 0.8, 8)),
    (("Solarize", 0.2, 6), ("Color", 0.8, 6)),
    (("Solarize", 0.2, 6), ("AutoContrast", 0.8, 1)),
    (("Solarize", 0.4, 1), ("Equalize", 0.6, 5)),
    (("Brightness", 0.0, 0), ("Solarize", 0.5, 2)),
    (("AutoContrast", 0.9, 5), ("Brightness", 0.5, 3)),
    (("Contrast", 0.7, 5), ("Brightness", 0.0, 2)),
    (("Solarize", 0.2, 8), ("Solarize", 0.1, 5)),
    (("Contrast", 0.5, 1), ("TranslateY", 0.2, 9)),
    (("AutoContrast", 0.6, 5), ("TranslateY", 0.0, 9)),
    (("AutoContrast", 0.9, 4), ("Equalize", 0.8, 4)),
    (("Brightness", 0.0, 7), ("Equalize", 0.4, 7)),
    (("Solarize", 0.2, 5), ("Equalize", 0.7, 5)),
    (("Equalize", 0.6, 8), ("Color", 0.6, 2)),
    (("Color", 0.3, 7), ("Color", 0.2, 4)),
    (("AutoContrast", 0.5, 2), ("Solarize", 0.7, 2)),
    (("AutoContrast", 0.2, 0), ("Equalize", 0.1, 0)),
    (("ShearY", 0.6, 5), ("Equalize", 0.6, 5)),
    (("Brightness", 0.9, 3), ("AutoContrast", 0.4, 1)),
    (("Equalize", 0.8, 8), ("Equalize", 0.7, 7)),
    (("Equalize", 0.7, 7), ("Solarize", 0.5, 0)),
    (("Equalize", 0.8, 4), ("TranslateY", 0.8, 9)),
    (("TranslateY", 0.8, 9), ("TranslateY", 0.6, 9)),
    (("TranslateY", 0.9, 0), ("TranslateY", 0.5, 9)),
    (("AutoContrast", 0.5, 3), ("Solarize", 0.3, 4)),
    (("Solarize", 0.5, 3), ("Equalize", 0.4, 4)),
    # exp2_0 .. exp2_7
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, 7), ("AutoContrast", 0.4, 8)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, 3)),
    (("AutoContrast", 0.1, 5), ("Brightness", 0.0, 0)),
    (("Cutout", 0.2, 4), ("Equalize", 0.1, 1)),
    (("Equalize", 0.7, 7), ("AutoContrast", 0.6, 4)),
    (("Color", 0.1, 8), ("ShearY", 0.2, 3)),
    (("ShearY", 0.4, 2), ("Rotate", 0.7, 0)),
    (("ShearY", 0.1, 3), ("AutoContrast", 0.9, 5)),
    (("TranslateY", 0.3, 6), ("Cutout", 0.3, 3)),
    (("Equalize", 0.5, 0), ("Solarize", 0.6, 6)),
    (("AutoContrast", 0.3, 5), ("Rotate", 0.2, 7)),
    (("Equalize", 0.8, 2), ("Invert", 0.4, 0)),
    (("Equalize", 0.9, 5), ("Color", 0.7, 0)),
    (("Equalize", 0.1, 1), ("ShearY", 0.1, 3)),
    (("AutoContrast", 0.7, 3), ("Equalize", 0.7, 0)),
    (("Brightness", 0.5, 1), ("Contrast", 0.1, 7)),
    (("Contrast", 0.1, 4), ("Solarize", 0.6, 5)),
    (("Solarize", 0.2, 3), ("ShearX", 0.0, 0)),
    (("TranslateX", 0.3, 0), ("TranslateX", 0.6, 0)),
    (("Equalize", 0.5, 9), ("TranslateY", 0.6, 7)),
    (("ShearX", 0.1, 0), ("Sharpness", 0.5, 1)),
    (("Equalize", 0.8, 6), ("Invert", 0.3, 6)),
    (("AutoContrast", 0.3, 9), ("Cutout", 0.5, 3)),
    (("ShearX", 0.4, 4), ("AutoContrast", 0.9, 2)),
    (("ShearX", 0.0, 3), ("Posterize", 0.0, 3)),
    (("Solarize", 0.4, 3), ("Color", 0.2, 4)),
    (("Equalize", 0.1, 4), ("Equalize", 0.7, 6)),
    (("Equalize", 0.3, 8), ("AutoContrast", 0.4, 3)),
    (("Solarize", 0.6, 4), ("AutoContrast", 0.7, 6)),
    (("AutoContrast", 0.2, 9), ("Brightness", 0.4, 8)),
    (("Equalize", 0.1, 0), ("Equalize", 0.0, 6)),
    (("Equalize", 0.8, 4), ("Equalize", 0.0, 4)),
    (("Equalize", 0.5, 5), ("AutoContrast", 0.1, 2)),
    (("Solarize", 0.5, 5), ("AutoContrast", 0.9, 5)),
    (("AutoContrast", 0.6, 1), ("AutoContrast", 0.7, 8)),
    (("Equalize", 0.2, 0), ("AutoContrast", 0.1, 2)),
    (("Equalize", 0.6, 9), ("Equalize", 0.4, 4)),
)
"""The original's ``good_policies()`` ("AutoAugment policies found on Cifar"), its fine-tuning
policy (ORIGINAL.md §3.3): 95 sub-policies, including Cutout."""

POLICIES: dict[str, tuple[SubPolicy, ...]] = {"imagenet": IMAGENET_POLICY, "good": GOOD_POLICY}


# --- helpers ------------------------------------------------------------------------------------


def _per_image(
    value: torch.Tensor | float, images: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """A scalar or one value per image, shaped to broadcast over ``[N, C, H, W]``."""
    tensor = torch.as_tensor(value, dtype=dtype, device=images.device)
    return tensor.reshape(-1, 1, 1, 1) if tensor.dim() else tensor


def blend(
    degenerate: torch.Tensor, images: torch.Tensor, factor: torch.Tensor | float
) -> torch.Tensor:
    """``degenerate + factor · (images - degenerate)`` in float32, clipped and truncated to uint8:
    the original's ``blend`` (factor 0 gives ``degenerate``, 1 gives ``images``, above 1
    extrapolates). ``degenerate`` broadcasts against ``images``."""
    low = degenerate.float()
    scaled = _per_image(factor, images, torch.float32) * (images.float() - low)
    return (low + scaled).clamp(0.0, 255.0).to(torch.uint8)


def _nearest(coordinate: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``std::round(coordinate)`` (half away from zero) as an index, and whether it lies in
    ``[0, size)``: it does exactly when ``-0.5 < coordinate < size - 0.5``, and there it equals
    ``floor(coordinate + 0.5)``, computed in float64 where it is exact for float32 inputs."""
    inside = (coordinate > -0.5) & (coordinate < size - 0.5)
    return (coordinate.double() + 0.5).long(), inside


def _transform_nearest(
    images: torch.Tensor, coefficients: tuple[torch.Tensor, ...], replace: int
) -> torch.Tensor:
    """TF's ``ImageProjectiveTransform`` (NEAREST) with the original's wrap/unwrap: output pixel
    ``(x, y)`` reads input ``(a0·x + a1·y + a2, b0·x + b1·y + b2)`` (float32, in that order),
    rounded half away from zero; sources outside the image become ``replace``. Coefficients are
    float32, one per image."""
    n, c, h, w = images.shape
    a0, a1, a2, b0, b1, b2 = (
        k.to(images.device, torch.float32).reshape(-1, 1, 1) for k in coefficients
    )
    x = torch.arange(w, device=images.device, dtype=torch.float32).view(1, 1, w)
    y = torch.arange(h, device=images.device, dtype=torch.float32).view(1, h, 1)
    source_x, inside_x = _nearest(a0 * x + a1 * y + a2, w)
    source_y, inside_y = _nearest(b0 * x + b1 * y + b2, h)
    inside = (inside_x & inside_y).expand(n, h, w)
    index = torch.where(inside, source_y * w + source_x, 0).reshape(n, 1, h * w)
    moved = images.reshape(n, c, h * w).gather(2, index.expand(n, c, h * w)).view(n, c, h, w)
    return torch.where(inside.unsqueeze(1), moved, replace)


def _tf_grayscale(images: torch.Tensor) -> torch.Tensor:
    """``tf.image.rgb_to_grayscale`` on uint8: x/255 in float32, weights 0.2989/0.5870/0.1140
    summed in channel order, × 255.5 and truncated. Returns ``[N, 1, H, W]`` uint8."""
    scaled = images.float() * (1.0 / 255.0)
    gray = scaled[:, 0] * 0.2989 + scaled[:, 1] * 0.5870 + scaled[:, 2] * 0.1140
    return (gray * 255.5).to(torch.uint8).unsqueeze(1)


# --- the ops: uint8 [N, 3, H, W] in, uint8 out; parameters are scalars or one per image ---------


def autocontrast(images: torch.Tensor) -> torch.Tensor:
    """Per channel, stretch ``[min, max]`` to ``[0, 255]`` (float32 ``x·scale + offset``,
    truncated); a constant channel is left unchanged."""
    flat = images.flatten(2)
    low = flat.amin(2, keepdim=True).float()
    high = flat.amax(2, keepdim=True).float()
    scale = 255.0 / torch.where(high > low, high - low, 1.0)
    offset = -low * scale
    stretched = (flat.float() * scale + offset).clamp(0.0, 255.0).to(torch.uint8)
    return torch.where(high > low, stretched, flat).view_as(images)


def equalize(images: torch.Tensor) -> torch.Tensor:
    """PIL's histogram equalisation per channel, as the original: ``step = (pixels - count of
    the brightest value) // 255``; the lookup table is ``(cumsum + step // 2) // step`` shifted
    by one bin; a channel with ``step == 0`` is left unchanged."""
    n, c, h, w = images.shape
    flat = images.reshape(n * c, h * w).long()
    offsets = torch.arange(n * c, device=images.device)[:, None] * 256
    histogram = torch.bincount((flat + offsets).flatten(), minlength=n * c * 256).view(n * c, 256)
    brightest = histogram.gather(1, flat.amax(1, keepdim=True))
    step = (h * w - brightest) // 255
    divisor = step.clamp(min=1)
    table = (histogram.cumsum(1) + divisor // 2) // divisor
    table = torch.cat([torch.zeros_like(table[:, :1]), table[:, :-1]], 1).clamp(0, 255)
    equalized = torch.where(step > 0, table.to(torch.uint8).gather(1, flat), flat.to(torch.uint8))
    return equalized.view_as(images)


def invert(images: torch.Tensor) -> torch.Tensor:
    return 255 - images


def posterize(images: torch.Tensor, bits: torch.Tensor | int) -> torch.Tensor:
    """Keep the top ``bits`` bits; the shift ``8 - bits`` is clamped to 0..7 as TF's shifts."""
    shift = (8 - _per_image(bits, images, torch.int16)).clamp(0, 7).to(torch.uint8)
    return torch.bitwise_left_shift(torch.bitwise_right_shift(images, shift), shift)


def solarize(images: torch.Tensor, threshold: torch.Tensor | int) -> torch.Tensor:
    """Invert the pixels at or above ``threshold``."""
    below = images.short() < _per_image(threshold, images, torch.int16)
    return torch.where(below, images, 255 - images)


def solarize_add(
    images: torch.Tensor, addition: torch.Tensor | int, threshold: int = 128
) -> torch.Tensor:
    """Add ``addition`` (clipped to 0..255) to the pixels below ``threshold``."""
    added = (images.short() + _per_image(addition, images, torch.int16)).clamp(0, 255)
    return torch.where(images < threshold, added.to(torch.uint8), images)


def color(images: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """PIL ``Color``: blend from the (TF) grayscale image."""
    return blend(_tf_grayscale(images), images, factor)


def contrast(images: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """The original's ``Contrast``: blend from the constant ``min(int(H·W / 256), 255)`` — the
    sum of the grayscale histogram over 256, not its mean (a quirk of the TPU code)."""
    h, w = images.shape[-2:]
    level = min(h * w // 256, 255)  # the float32 histogram sum / 256, clipped and truncated
    return blend(torch.tensor(level, device=images.device), images, factor)


def brightness(images: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """PIL ``Brightness``: blend from black."""
    return blend(torch.zeros((), device=images.device), images, factor)


def sharpness(images: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """PIL ``Sharpness``: blend from the image smoothed with ``[[1,1,1],[1,5,1],[1,1,1]] / 13``
    (valid positions only, clipped and truncated; the one-pixel border keeps the original)."""
    h, w = images.shape[-2:]
    smoothed = images.clone()
    if h >= 3 and w >= 3:
        pixels = images.float()
        kernel = torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=torch.float32) / 13.0
        total = torch.zeros_like(pixels[..., 1:-1, 1:-1])
        for dy in range(3):
            for dx in range(3):
                total = total + pixels[..., dy : h - 2 + dy, dx : w - 2 + dx] * float(
                    kernel[dy, dx]
                )
        smoothed[..., 1:-1, 1:-1] = total.clamp(0.0, 255.0).to(torch.uint8)
    return blend(smoothed, images, factor)


def rotate(
    images: torch.Tensor, degrees: torch.Tensor | float, replace: int = REPLACE
) -> torch.Tensor:
    """``tf.contrib.image.rotate`` about the image centre (counter-clockwise for positive
    ``degrees``), nearest neighbour, empty pixels ``replace``."""
    n, _, h, w = images.shape
    angle = torch.as_tensor(degrees, dtype=torch.float32).reshape(-1).expand(n)
    radians = angle * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    width, height = float(w - 1), float(h - 1)
    x_offset = (width - (cos * width - sin * height)) / 2.0
    y_offset = (height - (sin * width + cos * height)) / 2.0
    return _transform_nearest(images, (cos, -sin, x_offset, sin, cos, y_offset), replace)


def _affine(
    images: torch.Tensor, value: torch.Tensor | float, slot: int, replace: int
) -> torch.Tensor:
    """Identity transform with coefficient ``slot`` (0..5, order a0 a1 a2 b0 b1 b2) set."""
    n = images.shape[0]
    magnitude = torch.as_tensor(value, dtype=torch.float32).reshape(-1).expand(n)
    coefficients = [torch.full((n,), float(k == 0 or k == 4)) for k in range(6)]
    coefficients[slot] = magnitude
    return _transform_nearest(images, tuple(coefficients), replace)


def shear_x(
    images: torch.Tensor, level: torch.Tensor | float, replace: int = REPLACE
) -> torch.Tensor:
    """Output ``(x, y)`` reads input ``(x + level·y, y)`` (PIL's ShearX)."""
    return _affine(images, level, 1, replace)


def shear_y(
    images: torch.Tensor, level: torch.Tensor | float, replace: int = REPLACE
) -> torch.Tensor:
    """Output ``(x, y)`` reads input ``(x, level·x + y)`` (PIL's ShearY)."""
    return _affine(images, level, 3, replace)


def translate_x(
    images: torch.Tensor, pixels: torch.Tensor | float, replace: int = REPLACE
) -> torch.Tensor:
    """Output ``(x, y)`` reads input ``(x + pixels, y)``: content moves left by ``pixels``."""
    return _affine(images, pixels, 2, replace)


def translate_y(
    images: torch.Tensor, pixels: torch.Tensor | float, replace: int = REPLACE
) -> torch.Tensor:
    """Output ``(x, y)`` reads input ``(x, y + pixels)``: content moves up by ``pixels``."""
    return _affine(images, pixels, 5, replace)


def cutout(
    images: torch.Tensor,
    pad_size: torch.Tensor | int,
    replace: int = REPLACE,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill rows ``[cy - pad, cy + pad)`` × columns ``[cx - pad, cx + pad)`` (clipped to the
    image) with ``replace``; the centre is uniform over all pixels, drawn per image (on the CPU,
    from ``generator``)."""
    n, _, h, w = images.shape
    centre_y = torch.randint(h, (n,), generator=generator).to(images.device).view(n, 1, 1, 1)
    centre_x = torch.randint(w, (n,), generator=generator).to(images.device).view(n, 1, 1, 1)
    pad = _per_image(pad_size, images, torch.long)
    y = torch.arange(h, device=images.device).view(1, 1, h, 1)
    x = torch.arange(w, device=images.device).view(1, 1, 1, w)
    inside = (
        (y >= centre_y - pad) & (y < centre_y + pad) & (x >= centre_x - pad) & (x < centre_x + pad)
    )
    return torch.where(inside, replace, images).to(torch.uint8)


# --- levels and policies ------------------------------------------------------------------------

NEGATED = frozenset({"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"})
"""Ops whose magnitude the original negates with probability 1/2."""


def level_to_magnitude(
    name: str,
    level: float,
    translate_const: float = TRANSLATE_CONST,
    cutout_const: float = CUTOUT_CONST,
) -> float:
    """The original's ``level_to_arg`` before the random negation (0 for parameterless ops)."""
    fraction = level / MAX_LEVEL
    if name in ("AutoContrast", "Equalize", "Invert"):
        return 0.0
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        return fraction * 1.8 + 0.1
    rules: dict[str, Callable[[], float]] = {
        "Rotate": lambda: fraction * 30.0,
        "Posterize": lambda: int(fraction * 4),
        "Solarize": lambda: int(fraction * 256),
        "SolarizeAdd": lambda: int(fraction * 110),
        "ShearX": lambda: fraction * 0.3,
        "ShearY": lambda: fraction * 0.3,
        "TranslateX": lambda: fraction * float(translate_const),
        "TranslateY": lambda: fraction * float(translate_const),
        "Cutout": lambda: int(fraction * cutout_const),
    }
    if name not in rules:
        raise ValueError(f"unknown AutoAugment op {name!r}; known: {', '.join(OPS)}")
    return rules[name]()


OpFunction = Callable[[torch.Tensor, torch.Tensor, int, torch.Generator | None], torch.Tensor]

OPS: dict[str, OpFunction] = {
    "AutoContrast": lambda x, m, r, g: autocontrast(x),
    "Equalize": lambda x, m, r, g: equalize(x),
    "Invert": lambda x, m, r, g: invert(x),
    "Rotate": lambda x, m, r, g: rotate(x, m, r),
    "Posterize": lambda x, m, r, g: posterize(x, m.long()),
    "Solarize": lambda x, m, r, g: solarize(x, m.long()),
    "SolarizeAdd": lambda x, m, r, g: solarize_add(x, m.long()),
    "Color": lambda x, m, r, g: color(x, m),
    "Contrast": lambda x, m, r, g: contrast(x, m),
    "Brightness": lambda x, m, r, g: brightness(x, m),
    "Sharpness": lambda x, m, r, g: sharpness(x, m),
    "ShearX": lambda x, m, r, g: shear_x(x, m, r),
    "ShearY": lambda x, m, r, g: shear_y(x, m, r),
    "TranslateX": lambda x, m, r, g: translate_x(x, m, r),
    "TranslateY": lambda x, m, r, g: translate_y(x, m, r),
    "Cutout": lambda x, m, r, g: cutout(x, m.long(), r, g),
}
"""Op name → ``f(images, magnitudes, replace, generator)``; the original's ``NAME_TO_FUNC``."""


class AutoAugment(nn.Module):
    """The original's ``distort_image_with_autoaugment`` on uint8 ``[3, H, W]`` or
    ``[N, 3, H, W]``: per image, a uniformly chosen sub-policy whose two ops each apply with
    their probability, magnitudes from the level rules, signed at random where the original
    negates. Random draws come from ``generator`` on the CPU (so results do not depend on the
    images' device); the ops run on the images' device, batched over the images that share an
    op (a loop over the ≤16 op kinds, not over images).
    """

    def __init__(
        self,
        policy: Policy = "imagenet",
        replace: int = REPLACE,
        translate_const: float = TRANSLATE_CONST,
        cutout_const: float = CUTOUT_CONST,
    ) -> None:
        super().__init__()
        if policy not in POLICIES:
            raise ValueError(
                f"autoaugment policy must be one of {', '.join(POLICIES)}, got {policy!r}"
            )
        self.policy, self.replace = policy, replace
        table = POLICIES[policy]
        self.op_names = tuple(sorted({name for sub in table for name, _, _ in sub}))
        self.op_index = torch.tensor([[self.op_names.index(op[0]) for op in sub] for sub in table])
        self.probability = torch.tensor(
            [[op[1] for op in sub] for sub in table], dtype=torch.float64
        )
        self.magnitude = torch.tensor(
            [
                [level_to_magnitude(op[0], op[2], translate_const, cutout_const) for op in sub]
                for sub in table
            ],
            dtype=torch.float64,
        )

    def forward(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() not in (3, 4) or images.shape[-3] != 3:
            raise ValueError(
                f"AutoAugment takes uint8 [3, H, W] or [N, 3, H, W] images, got "
                f"{images.dtype} {tuple(images.shape)}"
            )
        batch = images.unsqueeze(0) if images.dim() == 3 else images
        count = batch.shape[0]
        choice = torch.randint(len(self.op_index), (count,), generator=generator)
        out = batch.clone()
        for stage in range(2):
            applied = torch.rand(count, generator=generator, dtype=torch.float64)
            applied = applied < self.probability[choice, stage]
            negated = torch.rand(count, generator=generator, dtype=torch.float64) < 0.5
            ops = self.op_index[choice, stage]
            magnitude = self.magnitude[choice, stage]
            for index in ops[applied].unique().tolist():  # only the op kinds drawn
                name = self.op_names[index]
                chosen = (applied & (ops == index)).nonzero().flatten()
                value = magnitude[chosen]
                if name in NEGATED:
                    value = torch.where(negated[chosen], -value, value)
                rows = chosen.to(out.device)
                out[rows] = OPS[name](
                    out[rows], value.float().to(out.device), self.replace, generator
                )
        return out[0] if images.dim() == 3 else out

    def extra_repr(self) -> str:
        return f"policy={self.policy!r}, sub_policies={len(self.op_index)}, replace={self.replace}"
