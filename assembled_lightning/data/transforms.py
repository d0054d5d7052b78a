"""The paper's preprocessing, as named types (ORIGINAL.md §4).

Eval types resize the shorter side and centre-crop: ``imagenet`` (256 → 224),
``imagenet_224_256`` (292 → 256, Assemble-ResNet-50), ``imagenet_224_256a`` (257 → 256,
Assemble-ResNet-152), and the generic ``imagenet_XXX`` (int(XXX / 0.875) → XXX) and
``imagenet_XXXa`` (XXX + 1 → XXX). The resize is TF1's legacy bilinear kernel, which converted
weights were evaluated with; normalisation is the original's mean subtraction on 0..255 pixels or
torchvision's mean/std. The eval transform takes a decoded tensor or, as torchvision's weight
transforms do, a PIL image, made RGB exactly as image files are decoded (:mod:`.decode`).
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .autoaugment import AutoAugment
from .decode import pil_to_rgb

ORIGINAL_MEAN_RGB = (123.68, 116.78, 103.94)
TORCHVISION_MEAN_RGB = (0.485, 0.456, 0.406)
TORCHVISION_STD_RGB = (0.229, 0.224, 0.225)
CROP_FRACTION = 0.875

Normalization = Literal["original", "torchvision"]
Interpolation = Literal["tf_legacy_bilinear", "bilinear_antialias"]


def resize_shorter_side_size(height: int, width: int, target: int) -> tuple[int, int]:
    """The original's aspect-preserving size: float32 arithmetic, truncated to int.

    So 872×1000 with target 256 becomes 255×293, exactly as the original computes it.
    """
    scale = np.float32(target) / np.float32(min(height, width))
    return int(np.float32(height) * scale), int(np.float32(width) * scale)


def _legacy_axis(
    in_size: int, out_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source rows/columns and weights of TF1's legacy kernel along one axis."""
    source = torch.arange(out_size, device=device, dtype=torch.float32) * (in_size / out_size)
    low = source.floor().long().clamp(max=in_size - 1)
    high = (low + 1).clamp(max=in_size - 1)
    return low, high, source - low.float()


def tf_legacy_resize_bilinear(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF1 ``resize_images(BILINEAR, align_corners=False)``: source = dst · in/out, no half-pixel
    offset, no antialiasing. Works on ``[..., H, W]``; returns float32.

    Rows, then columns, are gathered with ``index_select`` in channels-last memory (whole-row
    copies), and only the gathered pixels are converted to float: ~10× faster than fancy
    indexing on a large crop.
    """
    flat = image.dim() == 2
    pixels = (image[None] if flat else image).movedim(-3, -1)  # [..., H, W, C]
    top, bottom, dy = _legacy_axis(pixels.shape[-3], size[0], image.device)
    left, right, dx = _legacy_axis(pixels.shape[-2], size[1], image.device)
    rows = pixels.index_select(-3, torch.cat([top, bottom]))
    columns = rows.index_select(-2, torch.cat([left, right])).float()
    width = size[1]
    dx = dx[:, None]
    horizontal = columns[..., :width, :] + (columns[..., width:, :] - columns[..., :width, :]) * dx
    upper, lower = horizontal[..., : size[0], :, :], horizontal[..., size[0] :, :, :]
    out = (upper + (lower - upper) * dy[:, None, None]).movedim(-1, -3)
    # channels-first memory: later per-pixel steps (normalisation) run ~20× faster on it
    out = out.contiguous()
    return out[0] if flat else out


def center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """Central crop with the original's offsets ``(side - size) // 2``."""
    height, width = image.shape[-2:]
    if height < size or width < size:
        raise ValueError(f"cannot crop {size}×{size} from an image of {height}×{width}")
    top, left = (height - size) // 2, (width - size) // 2
    return image[..., top : top + size, left : left + size]


class Normalize(nn.Module):
    """Float pixels 0..255 → the model's input.

    ``"original"`` subtracts the RGB means on the 0..255 scale with no std division, as the
    original did (ORIGINAL.md §4) and as converted TF weights expect; ``"torchvision"`` divides
    by 255, then subtracts the ImageNet mean and divides by its std, in torchvision's order.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, normalization: Normalization = "original") -> None:
        super().__init__()
        if normalization == "original":
            mean, std, self.divisor = ORIGINAL_MEAN_RGB, (1.0, 1.0, 1.0), 1.0
        elif normalization == "torchvision":
            mean, std, self.divisor = TORCHVISION_MEAN_RGB, TORCHVISION_STD_RGB, 255.0
        else:
            raise ValueError(
                f"normalization must be 'original' or 'torchvision', got {normalization!r}"
            )
        self.normalization = normalization
        self.register_buffer("mean", torch.tensor(mean).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.normalization == "original":  # x / 1 and x / 1.0 are exact: skip them
            return image.float() - self.mean
        return (image.float() / self.divisor - self.mean) / self.std

    def extra_repr(self) -> str:
        return repr(self.normalization)


def pil_to_rgb_tensor(image: Image.Image) -> torch.Tensor:
    """RGB ``uint8 [3, H, W]`` of a PIL image, converted as :func:`~.decode.decode_image` converts
    a file's pixels (alpha dropped, grayscale replicated, CMYK by Pillow, 16-bit grayscale by its
    high byte; 32-bit and float images refused), so an image opened by the caller gives the
    tensor its file would."""
    label = f"<PIL image, mode {image.mode}, {image.width}×{image.height}>"
    array = np.array(pil_to_rgb(image, label), dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1)


class EvalTransform(nn.Module):
    """Decoded ``uint8 [3, H, W]`` (or a batch), or a PIL image (:func:`pil_to_rgb_tensor`) →
    shorter side ``resize`` → centre ``crop`` → normalised float32 ``[3, crop, crop]``.

    With the defaults this is the original's eval branch (ORIGINAL.md §4): the float32-truncated
    aspect-preserving size, TF1's legacy bilinear kernel, offsets ``(side - crop) // 2`` and mean
    subtraction — what converted TF weights were evaluated with. ``"bilinear_antialias"``
    (PyTorch's antialiased bilinear, close to PIL's resize) suits weights trained with
    torchvision-style pipelines instead.
    """

    def __init__(
        self,
        resize: int,
        crop: int,
        interpolation: Interpolation = "tf_legacy_bilinear",
        normalization: Normalization = "original",
    ) -> None:
        super().__init__()
        if not 0 < crop <= resize:
            raise ValueError(
                f"need 0 < crop <= resize, got crop {crop} and resize {resize}: the crop is "
                "taken from the image whose shorter side was resized to `resize`"
            )
        if interpolation not in ("tf_legacy_bilinear", "bilinear_antialias"):
            raise ValueError(f"unknown interpolation {interpolation!r}")
        self.resize, self.crop, self.interpolation = resize, crop, interpolation
        self.normalize = Normalize(normalization)

    def forward(self, image: torch.Tensor | Image.Image) -> torch.Tensor:
        if isinstance(image, Image.Image):
            image = pil_to_rgb_tensor(image)
        size = resize_shorter_side_size(image.shape[-2], image.shape[-1], self.resize)
        if self.interpolation == "tf_legacy_bilinear":
            resized = tf_legacy_resize_bilinear(image, size)
        else:
            batch = image.float().unsqueeze(0) if image.dim() == 3 else image.float()
            resized = F.interpolate(batch, size, mode="bilinear", antialias=True)
            resized = resized.squeeze(0) if image.dim() == 3 else resized
        return self.normalize(center_crop(resized, self.crop))

    def extra_repr(self) -> str:
        return f"resize={self.resize}, crop={self.crop}, interpolation={self.interpolation!r}"


EVAL_TYPES: dict[str, tuple[int, int]] = {
    "imagenet": (int(224 / CROP_FRACTION), 224),
    "imagenet_224_256": (int(256 / CROP_FRACTION), 256),
    "imagenet_224_256a": (257, 256),
}


def eval_sizes(preprocessing_type: str) -> tuple[int, int]:
    """(shorter side, crop) of a named eval type, including ``imagenet_XXX`` / ``imagenet_XXXa``."""
    if preprocessing_type in EVAL_TYPES:
        return EVAL_TYPES[preprocessing_type]
    match = re.fullmatch(r"imagenet_(\d+)(a?)", preprocessing_type)
    if match and int(match.group(1)) > 0:
        crop = int(match.group(1))
        return (crop + 1 if match.group(2) else int(crop / CROP_FRACTION)), crop
    raise ValueError(
        f"unknown preprocessing type {preprocessing_type!r}; use one of "
        f"{', '.join(EVAL_TYPES)}, imagenet_XXX or imagenet_XXXa"
    )


def eval_transform(
    preprocessing_type: str = "imagenet", normalization: Normalization = "original"
) -> EvalTransform:
    """The original's eval preprocessing of a named ``preprocessing_type`` (ORIGINAL.md §4).

    ``imagenet_224_256`` (292 → 256) and ``imagenet_224_256a`` (257 → 256) are what the released
    Assemble-ResNet-50 and -152 were evaluated with; ``imagenet`` (256 → 224) is the vanilla one.
    Unknown names raise a ``ValueError`` listing the accepted ones.
    """
    resize, crop = eval_sizes(preprocessing_type)
    return EvalTransform(resize, crop, "tf_legacy_bilinear", normalization)


AutoAugmentPolicy = Literal["none", "imagenet", "good"]
"""``imagenet`` trains from scratch, ``good`` fine-tunes (ORIGINAL.md §3.1, §3.3)."""

_TF_EPSILON = float(np.float32(1e-7))  # kEps of TF's crop sampler, a float32 constant


def sample_crop_boxes(
    count: int,
    height: int,
    width: int,
    area_range: tuple[float, float] = (0.05, 1.0),
    aspect_range: tuple[float, float] = (0.75, 1.33),
    min_object_covered: float = 0.1,
    attempts: int = 100,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``count`` boxes ``[top, left, h, w]`` (int64, CPU) drawn as TF's
    ``sample_distorted_bounding_box`` with the whole image as the object box and
    ``use_image_if_no_bounding_boxes`` (ORIGINAL.md §4; TF's
    ``core/kernels/image/sample_distorted_bounding_box_op.cc``).

    Each attempt draws an aspect ratio (width / height) uniformly; the crop *height* is then
    uniform over the integers between ``round(sqrt(min_area / aspect))`` and
    ``round(sqrt(max_area / aspect))``, the upper end lowered so that ``round(h · aspect)``
    fits the width and clamped to the image height; the width is ``round(h · aspect)``. If the
    area misses ``area_range`` the height is nudged once up, then once down; the attempt fails
    if it still misses, does not fit, or covers less than ``min_object_covered`` of the image.
    The first successful attempt wins; after ``attempts`` failures the box is the whole image.
    The offsets are uniform over ``[0, H - h)`` and ``[0, W - w)`` (TF's range, which never
    touches the bottom/right edge unless the crop spans the image). Float32 and round-half-to-
    even (``lrintf``) as in the kernel; the area is therefore *not* uniform: on a 375×500
    image the mean crop area is ≈0.39 of the image and ≈1/3 of the crops are under 0.25.
    The attempts are vectorised (numpy float32, the draws from ``generator``).
    """
    f32 = np.float32
    aspect_draw = torch.rand(count, attempts, generator=generator).numpy()
    draws = torch.rand(count, attempts + 2, generator=generator, dtype=torch.float64).numpy()
    low_aspect, high_aspect = f32(aspect_range[0]), f32(aspect_range[1])
    aspect = aspect_draw * (high_aspect - low_aspect) + low_aspect
    min_area = f32(area_range[0]) * f32(width) * f32(height)
    max_area = f32(area_range[1]) * f32(width) * f32(height)
    min_height = np.rint(np.sqrt(min_area / aspect))
    max_height = np.rint(np.sqrt(max_area / aspect))
    fitted = np.floor((width + 0.5 - _TF_EPSILON) / aspect.astype(np.float64)).astype(f32)
    fitted = np.where(np.rint(fitted * aspect) > width, fitted - 1, fitted)
    max_height = np.where(np.rint(max_height * aspect) > width, fitted, max_height)
    max_height = np.minimum(max_height, f32(height))
    min_height = np.minimum(min_height, max_height)
    spread = np.floor(draws[:, :attempts] * (max_height - min_height + 1))
    crop_h = (min_height + spread).astype(np.int64)

    def width_of(crop_height: np.ndarray) -> np.ndarray:
        return np.rint(crop_height.astype(f32) * aspect).astype(np.int64)

    crop_w = width_of(crop_h)
    grow = (crop_w * crop_h).astype(f32) < min_area
    crop_h = np.where(grow, crop_h + 1, crop_h)
    crop_w = np.where(grow, width_of(crop_h), crop_w)
    shrink = (crop_w * crop_h).astype(f32) > max_area
    crop_h = np.where(shrink, crop_h - 1, crop_h)
    crop_w = np.where(shrink, width_of(crop_h), crop_w)
    area = (crop_w * crop_h).astype(f32)
    ok = (area >= min_area) & (area <= max_area) & (crop_w <= width) & (crop_h <= height)
    ok &= (crop_w > 0) & (crop_h > 0) & (area >= 1.0)
    ok &= area / f32(width * height) >= f32(min_object_covered)
    first = ok.argmax(1)[:, None]
    found = ok.any(1)
    crop_h = np.where(found, np.take_along_axis(crop_h, first, 1)[:, 0], height)
    crop_w = np.where(found, np.take_along_axis(crop_w, first, 1)[:, 0], width)
    top = np.floor(draws[:, attempts] * (height - crop_h)).astype(np.int64)
    left = np.floor(draws[:, attempts + 1] * (width - crop_w)).astype(np.int64)
    return torch.from_numpy(np.stack([top, left, crop_h, crop_w], 1))


def sample_crop_box(
    height: int,
    width: int,
    area_range: tuple[float, float] = (0.05, 1.0),
    aspect_range: tuple[float, float] = (0.75, 1.33),
    min_object_covered: float = 0.1,
    attempts: int = 100,
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of one crop drawn as TF's ``sample_distorted_bounding_box`` on the
    whole image (ORIGINAL.md §4); see :func:`sample_crop_boxes` for the algorithm."""
    box = sample_crop_boxes(
        1, height, width, area_range, aspect_range, min_object_covered, attempts, generator
    )
    top, left, crop_h, crop_w = box[0].tolist()
    return top, left, crop_h, crop_w


def auto_augment(policy: AutoAugmentPolicy) -> nn.Module:
    """The original's AutoAugment on uint8 images (:mod:`assembled_lightning.data.autoaugment`):
    ``"imagenet"`` (25 sub-policies, from scratch), ``"good"`` (95 sub-policies, fine-tuning) or
    ``"none"`` (identity)."""
    if policy == "none":
        return nn.Identity()
    if policy not in ("imagenet", "good"):
        raise ValueError(f"autoaugment must be 'none', 'imagenet' or 'good', got {policy!r}")
    return AutoAugment(policy)


class TrainTransform(nn.Module):
    """The paper's training preprocessing of one decoded uint8 ``[3, H, W]`` image, in the
    original's order (ORIGINAL.md §4, master:preprocessing/imagenet_preprocessing.py): TF's
    random crop (:func:`sample_crop_box`), horizontal flip *of the crop*, resize to ``size``
    (TF1 legacy bilinear), optional AutoAugment on uint8, normalisation.

    Two details follow the original because they change pixels: the flip comes before the
    resize, whose asymmetric sampling (source = dst · in/out) does not commute with a flip
    (flipping after the resize would shift the image by ``in/out - 1`` source pixels); and the
    float resize is clipped and *truncated* to uint8 before AutoAugment, as ``tf.cast`` does
    (rounding would brighten AutoAugment's input by about half a grey level). Without
    AutoAugment the float resize is normalised directly, as in the original. Pass
    ``generator`` to ``forward`` for reproducible draws."""

    def __init__(
        self,
        size: int = 224,
        area_range: tuple[float, float] = (0.05, 1.0),
        aspect_range: tuple[float, float] = (0.75, 1.33),
        flip: bool = True,
        autoaugment: AutoAugmentPolicy = "none",
        normalization: Normalization = "original",
    ) -> None:
        super().__init__()
        if not 0 < area_range[0] <= area_range[1] <= 1:
            raise ValueError(f"area_range must satisfy 0 < low <= high <= 1, got {area_range}")
        if not 0 < aspect_range[0] <= aspect_range[1]:
            raise ValueError(f"aspect_range must satisfy 0 < low <= high, got {aspect_range}")
        self.size, self.area_range, self.aspect_range = size, area_range, aspect_range
        self.flip = flip
        self.augment = auto_augment(autoaugment)
        self.normalize = Normalize(normalization)

    def forward(
        self, image: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        top, left, height, width = sample_crop_box(
            image.shape[-2],
            image.shape[-1],
            self.area_range,
            self.aspect_range,
            generator=generator,
        )
        crop = image[..., top : top + height, left : left + width]
        if self.flip and torch.rand((), generator=generator) < 0.5:
            crop = crop.flip(-1)
        resized = tf_legacy_resize_bilinear(crop, (self.size, self.size))
        if isinstance(self.augment, AutoAugment):
            truncated = resized.clamp(0, 255).to(torch.uint8)
            resized = self.augment(truncated, generator=generator).float()
        return self.normalize(resized)

    def extra_repr(self) -> str:
        return f"size={self.size}, area={self.area_range}, aspect={self.aspect_range}"


class DeviceReadyTransform(nn.Module):
    """CPU half of on-device augmentation: decoded uint8 → shorter side ``size`` → centre square,
    still uint8, so that batches are small to transfer and equal-sized for batched crops."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = resize_shorter_side_size(image.shape[-2], image.shape[-1], self.size)
        resized = tf_legacy_resize_bilinear(image, (max(height, self.size), max(width, self.size)))
        return center_crop(resized, self.size).round().clamp(0, 255).to(torch.uint8)


def _legacy_crop_axis(
    start: torch.Tensor, length: torch.Tensor, out_size: int, flipped: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample source indices (into the full image) and weights of TF1's legacy bilinear
    kernel along one axis of a crop ``[start, start + length)``, mirrored where ``flipped``."""
    scale = length.float() / out_size
    source = torch.arange(out_size, device=start.device, dtype=torch.float32) * scale[:, None]
    low = source.floor().long()
    high = torch.minimum(low + 1, length[:, None] - 1)
    weight = source - low.float()
    mirror = flipped[:, None]
    low = torch.where(mirror, length[:, None] - 1 - low, low)
    high = torch.where(mirror, length[:, None] - 1 - high, high)
    return start[:, None] + low, start[:, None] + high, weight


def crop_flip_resize(
    images: torch.Tensor, boxes: torch.Tensor, flipped: torch.Tensor, size: int
) -> torch.Tensor:
    """Batched crop ``boxes`` (``[N, 4]`` top, left, h, w) → horizontal flip where ``flipped``
    → TF1 legacy bilinear resize to ``size``×``size``; float32 ``[N, C, size, size]``, the same
    numbers as :func:`tf_legacy_resize_bilinear` on each flipped crop (gathers, no loop)."""
    boxes, flipped = boxes.to(images.device), flipped.to(images.device)
    never = torch.zeros_like(flipped)
    top, bottom, dy = _legacy_crop_axis(boxes[:, 0], boxes[:, 2], size, never)
    left, right, dx = _legacy_crop_axis(boxes[:, 1], boxes[:, 3], size, flipped)
    pixels = images.movedim(1, -1)  # [N, H, W, C]
    batch = torch.arange(images.shape[0], device=images.device)[:, None]
    rows = pixels[batch, torch.cat([top, bottom], 1)]  # [N, 2·size, W, C]
    lines = torch.arange(2 * size, device=images.device)[None, :, None]
    columns = rows[batch[:, :, None], lines, torch.cat([left, right], 1)[:, None, :]].float()
    first, second = columns[:, :, :size], columns[:, :, size:]
    horizontal = first + (second - first) * dx[:, None, :, None]
    upper, lower = horizontal[:, :size], horizontal[:, size:]
    return (upper + (lower - upper) * dy[:, :, None, None]).movedim(-1, 1)


class DeviceTrainAugmentation(nn.Module):
    """Device half of the training preprocessing, on the whole uint8 batch: TF's crop sampler
    (:func:`sample_crop_boxes`), flip of the crop, TF1 legacy bilinear resize
    (:func:`crop_flip_resize`), truncation to uint8 and the original's AutoAugment, then
    normalisation — the same steps and arithmetic as :class:`TrainTransform`.

    One difference remains, the price of batching: the crop is sampled from the centre square
    that :class:`DeviceReadyTransform` made on the CPU (shorter side resized to ``size / 0.875``,
    rounded to uint8), not from the decoded image, so the crops never reach beyond that square
    and are resampled twice. Random draws come from ``generator`` on the CPU."""

    def __init__(
        self,
        size: int = 224,
        area_range: tuple[float, float] = (0.05, 1.0),
        aspect_range: tuple[float, float] = (0.75, 1.33),
        autoaugment: AutoAugmentPolicy = "none",
        normalization: Normalization = "original",
        flip: bool = True,
    ) -> None:
        super().__init__()
        if not 0 < area_range[0] <= area_range[1] <= 1:
            raise ValueError(f"area_range must satisfy 0 < low <= high <= 1, got {area_range}")
        if not 0 < aspect_range[0] <= aspect_range[1]:
            raise ValueError(f"aspect_range must satisfy 0 < low <= high, got {aspect_range}")
        self.size, self.area_range, self.aspect_range = size, area_range, aspect_range
        self.flip = flip
        self.augment = auto_augment(autoaugment)
        self.normalize = Normalize(normalization)

    def forward(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        count, _, height, width = images.shape
        boxes = sample_crop_boxes(
            count, height, width, self.area_range, self.aspect_range, generator=generator
        )
        flipped = torch.rand(count, generator=generator) < 0.5
        if not self.flip:
            flipped = torch.zeros_like(flipped)
        resized = crop_flip_resize(images, boxes, flipped, self.size)
        if isinstance(self.augment, AutoAugment):
            truncated = resized.clamp(0, 255).to(torch.uint8)
            resized = self.augment(truncated, generator=generator).float()
        return self.normalize(resized)

    def extra_repr(self) -> str:
        return f"size={self.size}, area={self.area_range}, aspect={self.aspect_range}"
