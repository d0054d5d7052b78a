"""The blur corruptions: defocus, glass, motion, zoom and (extra) Gaussian blur.

Each follows ``make_imagenet_c.py`` (224-px table) operation by operation, on top of the
reference-exact filters of :mod:`.filters`; the random parts (motion angles, glass offsets) can
be pinned through ``corrupt(..., angle=..., offsets=...)``.
"""

from __future__ import annotations

import math

import torch

from .filters import (
    clipped_zoom,
    correlation_matrix,
    filter2d_reflect101,
    gaussian_filter,
    motion_blur_kernel_shift_and_add,
)
from .pieces import in_pieces
from .registry import register

DEFOCUS = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))
"""(disk radius in px, σ of the anti-aliasing Gaussian) per severity."""
GAUSSIAN_BLUR = (1, 2, 3, 4, 6)
"""σ in px of the Gaussian blur per severity."""
GLASS = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))
"""(σ of the blurs, max_delta of the pixel offsets, iterations of the pixel scan) per severity."""
MOTION = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))
"""(radius, sigma) of ImageMagick's motion blur per severity."""
ZOOM = ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03))
"""``np.arange(start, stop, step)`` of the zoom factors per severity."""
MOTION_ANGLE_RANGE = (-45.0, 45.0)
"""Motion blur's angle ~ U(−45°, 45°), one per image."""


def float_arange(start: float, stop: float, step: float) -> list[float]:
    """NumPy's float ``arange``: ``ceil((stop − start)/step)`` values, so rounding makes
    ``arange(1, 1.11, 0.01)`` end at 1.11 (12 zoom factors, not 11) as in the reference."""
    return [start + i * step for i in range(math.ceil((stop - start) / step))]


def zoom_factors(severity: int) -> list[float]:
    """Zoom blur's factors at ``severity``: 12, 16, 11, 13, 11 of them."""
    return float_arange(*ZOOM[severity - 1])


def _opencv_gaussian_weights(ksize: int, sigma: float) -> torch.Tensor:
    """``cv2.getGaussianKernel(ksize, sigma, CV_32F)`` for σ > 0 (its closed form; the fixed
    tables are only for σ ≤ 0), in float64 holding the float32 values."""
    x = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2
    weights = torch.exp(-0.5 / sigma**2 * x**2)
    return (weights / weights.sum()).float().double()


def defocus_kernel(radius: int, alias_blur: float) -> torch.Tensor:
    """The reference's ``disk``: a normalised float32 disk on a 17×17 grid (21×21 for
    radius 10) smoothed by ``cv2.GaussianBlur`` (3×3, or 5×5 for the larger grid; reflect-101
    borders) with σ ``alias_blur``. Returns the float32 kernel."""
    half, ksize = (8, 3) if radius <= 8 else (radius, 5)
    grid = torch.arange(-half, half + 1, dtype=torch.float64)
    disk = (grid[:, None] ** 2 + grid[None, :] ** 2 <= radius**2).float()
    disk = (disk / disk.sum()).double()
    smoothing = correlation_matrix(
        disk.shape[0], _opencv_gaussian_weights(ksize, alias_blur), "mirror"
    )
    return (smoothing @ disk @ smoothing.T).float()


@register("defocus_blur", "blur")
def defocus_blur(
    images: torch.Tensor, severity: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Per-channel ``cv2.filter2D`` with the anti-aliased disk (border reflect-101)."""
    kernel = defocus_kernel(*DEFOCUS[severity - 1])
    return in_pieces(lambda piece: filter2d_reflect101(piece, kernel), images)


@register("gaussian_blur", "blur")
def gaussian_blur(
    images: torch.Tensor, severity: int, generator: torch.Generator | None
) -> torch.Tensor:
    """scikit-image's ``gaussian`` (truncate 4, mode ``nearest``) with σ of the severity."""
    return gaussian_filter(images, GAUSSIAN_BLUR[severity - 1])


@register("zoom_blur", "blur")
def zoom_blur(
    images: torch.Tensor, severity: int, generator: torch.Generator | None
) -> torch.Tensor:
    """The mean of the image and its clipped zooms by every factor of the severity."""
    factors = zoom_factors(severity)

    def mean_of_zooms(piece: torch.Tensor) -> torch.Tensor:
        total = piece.clone()
        for factor in factors:
            total += clipped_zoom(piece, factor)
        return total / (len(factors) + 1)

    return in_pieces(mean_of_zooms, images)


def uniform_angles(
    count: int, low: float, high: float, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """``count`` angles in degrees ~ U(low, high), float64 (one per image)."""
    draws = torch.rand(count, generator=generator, device=device, dtype=torch.float64)
    return low + (high - low) * draws


def per_image_angles(
    angle: torch.Tensor | float | None,
    images: torch.Tensor,
    angle_range: tuple[float, float],
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The pinned ``angle`` (one for the batch or one per image, degrees), else random ones."""
    batch = images.shape[0]
    if angle is None:
        return uniform_angles(batch, *angle_range, generator, images.device)
    angles = torch.as_tensor(angle, dtype=torch.float64).reshape(-1).to(images.device)
    if angles.numel() == 1:
        return angles.expand(batch)
    if angles.numel() != batch:
        raise ValueError(f"angle= needs 1 or {batch} values (degrees), got {angles.numel()}")
    return angles


def round_to_8_bits(images: torch.Tensor) -> torch.Tensor:
    """The reference's PNG round trip of ImageMagick's output: values rounded to k/255."""
    return torch.round(images * 255) / 255


@register("motion_blur", "blur", inputs=("angle",))
def motion_blur(
    images: torch.Tensor,
    severity: int,
    generator: torch.Generator | None,
    angle: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """ImageMagick's motion blur at angle U(−45°, 45°) per image (pin with ``angle=``, degrees),
    rounded to 8 bits like the reference's PNG output."""
    radius, sigma = MOTION[severity - 1]
    angles = per_image_angles(angle, images, MOTION_ANGLE_RANGE, generator)
    return round_to_8_bits(motion_blur_kernel_shift_and_add(images, radius, sigma, angles))


def glass_offsets(
    shape: tuple[int, int, int, int],
    max_delta: int,
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    """Random glass-blur offsets of ``shape`` = (iterations, N, H, W): an int8 tensor of that
    shape × 2 holding (row, column) offsets ~ ``np.random.randint(-d, d)``, i.e. uniform on
    {−d, …, d−1} (the reference's asymmetric range). int8 draws the same values as int64 at
    half the time on the CPU (tens of millions of them per severity)."""
    return torch.randint(
        -max_delta, max_delta, (*shape, 2), generator=generator, device=device, dtype=torch.int8
    )


def shuffle_pixels(pixels: torch.Tensor, offsets: torch.Tensor, max_delta: int) -> torch.Tensor:
    """One scan of the reference's glass-blur loop, exactly, without a per-pixel loop.

    The reference visits rows h = H−d … d+1 (descending) and within each row columns
    w = W−d … d+1, and does ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` on NumPy views, which
    *copies* x[h', w'] into x[h, w] (the second assignment writes the copied value back), with
    (h', w') = (h, w) + offsets[h, w]. So a visited pixel p gets new(src) if src was visited
    earlier in the scan (it already holds its new value), else the value before the scan; the
    unvisited border keeps its value. Those chains are resolved for all pixels at once by
    pointer jumping (≈ log2 of the longest chain gathers), then the channels are gathered once.

    Args:
        pixels: N×C×H×W, any dtype.
        offsets: N×H×W×2 integer (row, column) offsets in {−d … d−1}; ignored outside the
            visited rectangle.
        max_delta: d.
    """
    batch, channels, height, width = pixels.shape
    device = pixels.device
    d = max_delta
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)

    def visited(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return (r >= d + 1) & (r <= height - d) & (c >= d + 1) & (c <= width - d)

    offsets = offsets.to(device=device, dtype=torch.long)
    here = visited(rows, cols)
    src_rows = torch.where(here, rows + offsets[..., 0], rows)
    src_cols = torch.where(here, cols + offsets[..., 1], cols)
    earlier = (src_rows > rows) | ((src_rows == rows) & (src_cols > cols))
    linked = (here & visited(src_rows, src_cols) & earlier).view(batch, -1)
    # not done: pointer to a pixel with the same new value; done: index of the value to copy
    pointer = (src_rows * width + src_cols).view(batch, -1)
    done = ~linked
    while not bool(done.all()):
        pointer, done = (
            torch.where(done, pointer, pointer.gather(1, pointer)),
            done | done.gather(1, pointer),
        )
    flat = pixels.reshape(batch, channels, height * width)
    index = pointer.unsqueeze(1).expand(-1, channels, -1)
    return flat.gather(2, index).view(batch, channels, height, width)


@register("glass_blur", "blur", inputs=("offsets",), reference_size=224)
def glass_blur(
    images: torch.Tensor,
    severity: int,
    generator: torch.Generator | None,
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gaussian blur → truncation to 8 bits → ``iterations`` scans of local pixel copies
    (:func:`shuffle_pixels`) → Gaussian blur.

    The reference's scan bounds are hard-coded for 224 px; here they follow the image size
    (rows and columns separately). ``offsets=`` pins the random part: an integer tensor of
    (iterations, N, H, W, 2) (row, column) offsets in {−d … d−1}, or (iterations, H, W, 2)
    shared by the batch.
    """
    sigma, max_delta, iterations = GLASS[severity - 1]
    batch, _, height, width = images.shape
    shape = (iterations, batch, height, width)
    if offsets is None:
        offsets = glass_offsets(shape, max_delta, generator, images.device)
    else:
        offsets = torch.as_tensor(offsets)
        if offsets.dim() == 4:
            offsets = offsets.unsqueeze(1).expand(-1, batch, -1, -1, -1)
        if tuple(offsets.shape) != (*shape, 2):
            raise ValueError(
                f"offsets= must have shape {(*shape, 2)} or {(iterations, height, width, 2)}, "
                f"got {tuple(offsets.shape)}"
            )
        if offsets.min() < -max_delta or offsets.max() >= max_delta:
            raise ValueError(
                f"glass_blur severity {severity} needs offsets in [-{max_delta}, {max_delta})"
            )

    def blur_shuffle_blur(piece: torch.Tensor, scans: torch.Tensor) -> torch.Tensor:
        levels = torch.floor(gaussian_filter(piece, sigma) * 255).clamp_(0, 255)  # np.uint8(·)
        for scan in scans.transpose(0, 1):
            levels = shuffle_pixels(levels, scan, max_delta)
        return gaussian_filter(levels / 255, sigma)

    return in_pieces(blur_shuffle_blur, images, offsets.transpose(0, 1))
