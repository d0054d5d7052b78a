"""Snow: a thresholded, zoomed Gaussian noise layer smeared by ImageMagick's motion blur, over a
brightened greyscale-washed image (``make_imagenet_c.py``'s ``snow``)."""

from __future__ import annotations

import torch

from .blur import per_image_angles, round_to_8_bits
from .filters import clipped_zoom, motion_blur_kernel_shift_and_add
from .registry import register

SNOW = (
    (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
    (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
    (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
)
"""(noise mean, noise std, zoom factor, threshold, motion radius, motion sigma, image blend)
per severity."""
SNOW_ANGLE_RANGE = (-135.0, -45.0)
"""The snow's motion-blur angle ~ U(−135°, −45°), one per image."""
GREY_WEIGHTS = (0.299, 0.587, 0.114)
"""``cv2.cvtColor(RGB2GRAY)``'s R, G, B weights (the same for float input)."""


@register("snow", "weather", inputs=("layer", "angle"), reference_size=224)
def snow(
    images: torch.Tensor,
    severity: int,
    generator: torch.Generator | None,
    layer: torch.Tensor | None = None,
    angle: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """The reference's snow, step by step.

    The snow layer N(mean, std) (one H×W field per image; pin with ``layer=``, N×H×W or H×W
    shared) is zoomed by ``clipped_zoom``, zeroed below the threshold, truncated to 8 bits (the
    reference saves it as a PNG for ImageMagick), motion-blurred at an angle U(−135°, −45°)
    (pin with ``angle=``, degrees) and rounded to 8 bits again (ImageMagick's PNG output). The
    image becomes ``blend·x + (1−blend)·max(x, 1.5·grey + 0.5)`` and gets the layer and its
    180° rotation added. The reference hard-codes 224 px (a reshape); other sizes run the same
    steps at their own size.
    """
    mean, std, zoom, threshold, radius, sigma, blend = SNOW[severity - 1]
    batch, _, height, width = images.shape
    if layer is None:
        noise = torch.randn(
            batch, 1, height, width, generator=generator, device=images.device, dtype=images.dtype
        )
        field = mean + std * noise
    else:
        field = torch.as_tensor(layer).to(device=images.device, dtype=images.dtype)
        if (
            field.dim() not in (2, 3)
            or field.shape[-2:] != (height, width)
            or (field.dim() == 3 and len(field) not in (1, batch))
        ):
            raise ValueError(
                f"layer= must be H×W or N×H×W with N = {batch}, H×W = {height}×{width}, "
                f"got shape {tuple(field.shape)}"
            )
        field = field.reshape(-1, 1, height, width).expand(batch, -1, -1, -1)
    flakes = clipped_zoom(field, zoom)
    flakes = torch.where(flakes < threshold, 0.0, flakes)
    flakes = torch.floor(flakes.clamp(0, 1) * 255) / 255  # the uint8 PNG handed to ImageMagick
    angles = per_image_angles(angle, images, SNOW_ANGLE_RANGE, generator)
    flakes = round_to_8_bits(motion_blur_kernel_shift_and_add(flakes, radius, sigma, angles))
    red, green, blue = images.unbind(1)
    grey = GREY_WEIGHTS[0] * red + GREY_WEIGHTS[1] * green + GREY_WEIGHTS[2] * blue
    washed = torch.maximum(images, (1.5 * grey + 0.5).unsqueeze(1))
    x = blend * images + (1 - blend) * washed
    return x + flakes + flakes.flip(-2, -1)
