"""Low-level image filters shared by the corruptions, matching the libraries the reference calls.

The reference generator (``make_imagenet_c.py``) filters with SciPy (``gaussian_filter`` through
scikit-image's ``gaussian``, ``zoom``), OpenCV (``filter2D``) and ImageMagick
(``MagickMotionBlurImage``). These are batched torch versions of exactly those operations, so a
corruption built on them reproduces the reference's pixels on any device:

* separable filters are applied as a dense ``size × size`` matrix per axis whose rows already
  fold the boundary extension in, which handles every SciPy mode for any radius, also radii
  larger than the image (elastic's σ = 170.8 px has a 512-px radius on 224-px images);
* resampling and shifts are index gathers, exact and cheap on CPU and GPU.

All functions take N×C×H×W float tensors and return a new tensor of the same dtype and device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BOUNDARY_MODES = ("nearest", "reflect", "mirror", "wrap", "constant")
"""SciPy's ``ndimage`` extension modes (``constant`` pads with 0)."""


def boundary_index(positions: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Map integer positions (any range) onto ``0 … size−1`` the way SciPy extends a signal.

    ``reflect`` is half-sample symmetric (``d c b a | a b c d | d c b a``), ``mirror`` whole-sample
    (``d c b | a b c d | c b a``, OpenCV's ``BORDER_REFLECT_101``); both repeat indefinitely, so
    any offset is valid. ``constant`` maps outside positions to −1 (the caller weights them 0).
    """
    if mode == "nearest":
        return positions.clamp(0, size - 1)
    if mode == "wrap":
        return positions.remainder(size)
    if mode == "reflect":
        folded = positions.remainder(2 * size)
        return torch.where(folded >= size, 2 * size - 1 - folded, folded)
    if mode == "mirror":
        if size == 1:
            return torch.zeros_like(positions)
        folded = positions.remainder(2 * size - 2)
        return torch.where(folded >= size, 2 * size - 2 - folded, folded)
    if mode == "constant":
        return torch.where((positions >= 0) & (positions < size), positions, -1)
    raise ValueError(f"unknown boundary mode {mode!r}; choose one of {', '.join(BOUNDARY_MODES)}")


def gaussian_weights(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """SciPy's 1-D Gaussian: radius ``int(truncate·σ + 0.5)``, ``exp(−x²/2σ²)`` summing to 1
    (float64, length 2·radius + 1)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 / sigma**2 * x**2)
    return weights / weights.sum()


def correlation_matrix(
    size: int,
    weights: torch.Tensor,
    mode: str,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The ``size × size`` matrix of a centred 1-D correlation with ``weights`` (odd length)
    under SciPy's boundary ``mode``: row i holds the weight every input sample gets in output i,
    with the extended samples folded onto the ones they copy."""
    taps = weights.numel()
    if taps % 2 != 1:
        raise ValueError(f"expected an odd number of filter taps, got {taps}")
    radius = taps // 2
    rows = torch.arange(size)[:, None]
    sources = boundary_index(rows + torch.arange(taps)[None, :] - radius, size, mode)
    tap_weights = weights.to(torch.float64).expand(size, taps)
    tap_weights = torch.where(sources >= 0, tap_weights, 0.0)  # "constant" pads with zeros
    matrix = torch.zeros(size, size, dtype=torch.float64)
    matrix.scatter_add_(1, sources.clamp(min=0), tap_weights)
    return matrix.to(dtype=dtype, device=device)


def separable_filter(images: torch.Tensor, weights: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate the rows then the columns of N×C×H×W ``images`` with the same 1-D ``weights``
    (SciPy's axis order: H first, then W)."""
    height, width = images.shape[-2:]
    along_h = correlation_matrix(height, weights, mode, dtype=images.dtype, device=images.device)
    along_w = correlation_matrix(width, weights, mode, dtype=images.dtype, device=images.device)
    return torch.matmul(torch.matmul(along_h, images), along_w.T)


def gaussian_filter(
    images: torch.Tensor, sigma: float, *, truncate: float = 4.0, mode: str = "nearest"
) -> torch.Tensor:
    """``scipy.ndimage.gaussian_filter`` over H and W of every channel (= scikit-image's
    ``gaussian(..., channel_axis=-1)``, whose default mode is ``nearest``)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    return separable_filter(images, gaussian_weights(sigma, truncate), mode)


def _zoom_window(size: int, factor: float) -> tuple[int, int, int, int]:
    """clipped_zoom along one axis: (crop start, crop length, zoomed length, trim start)."""
    crop = math.ceil(size / factor)
    zoomed = round(crop * factor)  # scipy.ndimage.zoom's output length (Python's round)
    return (size - crop) // 2, crop, zoomed, (zoomed - size) // 2


def clipped_zoom(images: torch.Tensor, factor: float) -> torch.Tensor:
    """The reference's ``clipped_zoom``: zoom into the centre by ``factor`` ≥ 1, same size out.

    Crops the centre ``ceil(size/factor)`` samples, resizes them like
    ``scipy.ndimage.zoom(order=1)`` (bilinear on corner-aligned grids, which is
    ``align_corners=True``; length ``round(crop·factor)``) and trims the excess centred. The
    reference crops a square of the image's height; here each axis uses its own length (the
    same on square images).
    """
    if factor < 1:
        raise ValueError(f"clipped_zoom needs a factor >= 1, got {factor}")
    height, width = images.shape[-2:]
    top, crop_h, zoomed_h, trim_h = _zoom_window(height, factor)
    left, crop_w, zoomed_w, trim_w = _zoom_window(width, factor)
    crop = images[..., top : top + crop_h, left : left + crop_w]
    zoomed = F.interpolate(crop, size=(zoomed_h, zoomed_w), mode="bilinear", align_corners=True)
    return zoomed[..., trim_h : trim_h + height, trim_w : trim_w + width]


TORCH_PAD_MODES = {"mirror": "reflect", "nearest": "replicate", "wrap": "circular"}
"""SciPy modes that ``F.pad`` copies sample for sample (for pads shorter than the side)."""


def extend_borders(images: torch.Tensor, pad_h: int, pad_w: int, mode: str) -> torch.Tensor:
    """Pad H and W of N×H×W or N×C×H×W ``images`` with SciPy's boundary ``mode``.

    ``F.pad`` where it makes the same copy (a pad shorter than the side, floating point): on
    the CPU it is 5–25× faster than the index gathers, which handle every other case (any pad,
    the repeated reflections of kernels wider than the image)."""
    height, width = images.shape[-2:]
    torch_mode = TORCH_PAD_MODES.get(mode)
    fits = pad_h < height and pad_w < width and images.dim() in (3, 4)
    if torch_mode is not None and fits and images.is_floating_point():
        return F.pad(images, (pad_w, pad_w, pad_h, pad_h), mode=torch_mode)
    device = images.device
    rows = boundary_index(torch.arange(-pad_h, height + pad_h, device=device), height, mode)
    cols = boundary_index(torch.arange(-pad_w, width + pad_w, device=device), width, mode)
    return images.index_select(-2, rows).index_select(-1, cols)


def filter2d_reflect101(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``cv2.filter2D(channel, -1, kernel)`` on every channel: a 2-D correlation (not a
    convolution) anchored at the kernel's centre, borders extended ``BORDER_REFLECT_101``.

    Computed by FFT (as OpenCV does for large kernels): a direct float64 convolution of a
    21×21 disk is ~10× slower on CPU. The circular correlation of the padded image never wraps
    into the kept H×W window."""
    if kernel.dim() != 2 or kernel.shape[0] % 2 != 1 or kernel.shape[1] % 2 != 1:
        raise ValueError(f"expected a 2-D kernel of odd sizes, got shape {tuple(kernel.shape)}")
    height, width = images.shape[-2:]
    padded = extend_borders(images, kernel.shape[0] // 2, kernel.shape[1] // 2, "mirror")
    size = padded.shape[-2:]
    weights = kernel.to(dtype=images.dtype, device=images.device)
    spectrum = torch.fft.rfft2(padded) * torch.fft.rfft2(weights, s=size).conj()
    return torch.fft.irfft2(spectrum, s=size)[..., :height, :width].contiguous()


def motion_blur_offsets(radius: int, angles_deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageMagick's motion-blur sample offsets: for kernel tap i = 0 … 2·radius, the column
    offset ``ceil(i·cos θ − 0.5)`` and the row offset ``ceil(i·sin θ − 0.5)`` (computed as
    ImageMagick does, via a point at distance ``width`` and its ``hypot``), per angle.

    Returns two long tensors of shape (angles, 2·radius + 1): column and row offsets."""
    width = 2 * radius + 1
    theta = torch.deg2rad(angles_deg.to(torch.float64)).reshape(-1, 1)
    point_x, point_y = width * torch.sin(theta), width * torch.cos(theta)
    length = torch.hypot(point_x, point_y)
    taps = torch.arange(width, dtype=torch.float64, device=theta.device)
    cols = torch.ceil(taps * point_y / length - 0.5).long()
    rows = torch.ceil(taps * point_x / length - 0.5).long()
    return cols, rows


def motion_blur_weights(radius: int, sigma: float) -> torch.Tensor:
    """ImageMagick's one-sided motion-blur kernel: ``exp(−i²/2σ²)`` for i = 0 … 2·radius,
    normalised to sum 1 (float64)."""
    taps = torch.arange(2 * radius + 1, dtype=torch.float64)
    weights = torch.exp(-(taps**2) / (2 * sigma**2))
    return weights / weights.sum()


def motion_blur_kernel_shift_and_add(
    images: torch.Tensor, radius: int, sigma: float, angles_deg: torch.Tensor
) -> torch.Tensor:
    """ImageMagick's ``MotionBlurImage(radius, sigma, angle)`` on N×C×H×W ``images``, one angle
    (degrees, tensor of N) per image: output(y, x) = Σ_i k_i · input(y + row_i, x + col_i), the
    samples beyond the border replicating the edge (ImageMagick's default virtual pixels).

    Shift and add: the image is edge-padded once by the largest offset; every tap then adds,
    image by image, the H×W window at its offset as a view of the padded image (no copies, no
    index tensors: ~2× faster than gathering each tap's windows for the whole batch)."""
    batch, _, height, width = images.shape
    angles_deg = angles_deg.reshape(-1).to(images.device)
    if angles_deg.numel() != batch:
        raise ValueError(f"expected {batch} angles (one per image), got {angles_deg.numel()}")
    col_offsets, row_offsets = motion_blur_offsets(radius, angles_deg)
    pad = 2 * radius  # |offset| ≤ i ≤ 2·radius
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    weights = motion_blur_weights(radius, sigma).tolist()
    out = torch.zeros_like(images)
    for image, source, rows, cols in zip(
        out, padded, (row_offsets + pad).tolist(), (col_offsets + pad).tolist(), strict=True
    ):
        for weight, row, col in zip(weights, rows, cols, strict=True):
            image.add_(source[:, row : row + height, col : col + width], alpha=weight)
    return out
