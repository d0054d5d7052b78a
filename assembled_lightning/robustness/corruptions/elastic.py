"""ImageNet-C's elastic transform: a small random affine warp, then a smooth random
displacement field, both resampled bilinearly.

The reference (``make_imagenet_c.py``, a modification of a well-known gist) warps with
``cv2.getAffineTransform`` / ``cv2.warpAffine`` (bilinear, ``BORDER_REFLECT_101``), smooths two
U(−1, 1) fields with scikit-image's ``gaussian`` (mode ``reflect``, truncate 3) and samples with
``scipy.ndimage.map_coordinates(order=1, mode='reflect')``. The warp reproduces OpenCV 3.x/4.x,
which resolves source positions to 1/32 px in fixed point (checked against OpenCV 4.14: within
0.001 grey levels; OpenCV 5 samples the exact positions, which moves its output from 4.x's by up
to ~2 grey levels at sharp edges, 0.05 on average). Both random parts can be pinned:
``affine_jitter=`` (N×3×2 in [−1, 1], scaled by the severity's jitter) and ``displacement=``
(N×2×H×W in [−1, 1]: the fields for the column shift dx, then the row shift dy, before
smoothing). Its constants are in absolute pixels ("244" in its table "should have been 224", says
the file); they are used as they are at every size.
"""

from __future__ import annotations

import torch

from .filters import gaussian_filter
from .pieces import in_pieces
from .registry import register

ELASTIC_PARAMS = (
    (244 * 2, 244 * 0.7, 244 * 0.1),
    (244 * 2, 244 * 0.08, 244 * 0.2),
    (244 * 0.05, 244 * 0.01, 244 * 0.02),
    (244 * 0.07, 244 * 0.01, 244 * 0.02),
    (244 * 0.12, 244 * 0.01, 244 * 0.02),
)
"""(alpha: displacement scale in px, sigma: smoothing of the displacement field in px,
affine jitter: largest shift of each of the 3 affine anchor points in px), the reference's
244-based table evaluated as it is (e.g. 244 * 0.7 = 170.79999999999998)."""

AFFINE_FIXED_BITS = 10
"""``warpAffine`` accumulates source positions in 10-bit fixed point (OpenCV's AB_BITS)."""
INTER_STEPS = 32
"""… and interpolates between pixels in steps of 1/32 (INTER_TAB_SIZE); OpenCV 5 dropped this
quantisation, which moves the result by up to ~2 grey levels at sharp edges."""

DISPLACEMENT_TRUNCATE = 3.0
"""The displacement fields' Gaussian is cut at 3 σ (the reference's ``truncate=3``)."""


def _fold(coordinates: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Positions folded into [0, size − 1] so that linear interpolation there equals linear
    interpolation of the extended signal: "mirror" (whole-sample symmetric, OpenCV's
    ``BORDER_REFLECT_101``) mirrors about 0 and size − 1; "reflect" (SciPy's half-sample
    symmetric) about −½ and size − ½, where the extension is flat up to the edge sample."""
    if size == 1:
        return torch.zeros_like(coordinates)
    if mode == "mirror":
        period = 2 * (size - 1)
        folded = coordinates.remainder(period)
        return torch.where(folded > size - 1, period - folded, folded)
    if mode == "reflect":
        period = 2 * size
        folded = (coordinates + 0.5).remainder(period)
        return (torch.where(folded >= size, period - folded, folded) - 0.5).clamp(0, size - 1)
    raise ValueError(f"unsupported boundary mode {mode!r}: use 'mirror' or 'reflect'")


def bilinear_sample(
    images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, mode: str
) -> torch.Tensor:
    """N×C×H×W ``images`` sampled at float64 positions ``rows``/``cols`` (N×h×w, pixel centres at
    integers), beyond the borders as SciPy's boundary ``mode`` extends the image ("mirror" is
    OpenCV's ``BORDER_REFLECT_101``, "reflect" SciPy's half-sample symmetric one)."""
    batch, channels, height, width = images.shape
    rows, cols = _fold(rows, height, mode), _fold(cols, width, mode)
    top = rows.floor().clamp(max=max(height - 2, 0))
    left = cols.floor().clamp(max=max(width - 2, 0))
    down = (rows - top).to(images.dtype)[:, None]
    right = (cols - left).to(images.dtype)[:, None]
    upper = top.long() * width
    lower = (upper + width).clamp(max=(height - 1) * width)
    before = left.long()
    after = (before + 1).clamp(max=width - 1)
    flat = images.reshape(batch, channels, height * width)

    def tap(index: torch.Tensor) -> torch.Tensor:
        index = index.reshape(batch, 1, -1).expand(-1, channels, -1)
        return torch.gather(flat, 2, index).view(batch, channels, *rows.shape[1:])

    above = torch.lerp(tap(upper + before), tap(upper + after), right)
    below = torch.lerp(tap(lower + before), tap(lower + after), right)
    return torch.lerp(above, below, down)


def _anchor_points(height: int, width: int, device: torch.device) -> torch.Tensor:
    """The reference's 3 affine anchors as (x, y): centre ± a third of the shorter side (at least
    1 px, so that images under 3 px still get a well-defined affine map)."""
    side = max(1, min(height, width) // 3)
    cx, cy = width // 2, height // 2
    points = [[cx + side, cy + side], [cx + side, cy - side], [cx - side, cy - side]]
    return torch.tensor(points, dtype=torch.float64, device=device)


def random_affine_sources(
    jitter: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source rows and columns (N×H×W, float64) of the affine warp moving the anchors by
    ``jitter`` (N×3×2 px, (x, y)), as ``cv2.warpAffine`` resamples: output (x, y) reads the input
    at M⁻¹(x, y), M = ``getAffineTransform(anchors, anchors + jitter)``."""
    anchors = _anchor_points(height, width, jitter.device)
    moved = (anchors.float() + jitter.float()).double()  # the reference adds in float32
    ones = torch.ones(*moved.shape[:2], 1, dtype=torch.float64, device=jitter.device)
    # the inverse map solves [moved, 1] · Aᵀ = anchors directly
    inverse = torch.linalg.solve(torch.cat([moved, ones], 2), anchors.expand_as(moved))
    ys = torch.arange(height, dtype=torch.float64, device=jitter.device).view(1, height, 1)
    xs = torch.arange(width, dtype=torch.float64, device=jitter.device).view(1, 1, width)
    a = inverse.view(-1, 3, 2, 1, 1)
    cols = _opencv_fixed_point(a[:, 0, 0] * xs, a[:, 1, 0] * ys + a[:, 2, 0])
    rows = _opencv_fixed_point(a[:, 0, 1] * xs, a[:, 1, 1] * ys + a[:, 2, 1])
    return rows, cols


def _opencv_fixed_point(along_x: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """A source coordinate as OpenCV (3.x, 4.x) ``warpAffine`` resolves it: the per-column and
    per-row parts rounded to 1/1024 px, summed, then floored to 1/32 px (INTER_BITS = 5) after
    adding half a step, i.e. rounded to the nearest 1/32 px up to those 1/1024 roundings."""
    scale = float(1 << AFFINE_FIXED_BITS)
    fixed = torch.round(rest * scale) + torch.round(along_x * scale) + scale / (2 * INTER_STEPS)
    return torch.floor(fixed / (scale / INTER_STEPS)) / INTER_STEPS


def _pinned(value: torch.Tensor | None, shape: tuple[int, ...], name: str) -> torch.Tensor | None:
    if value is not None and tuple(value.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
    return value


@register("elastic_transform", "digital", inputs=("affine_jitter", "displacement"))
def elastic_transform(
    images: torch.Tensor,
    severity: int,
    generator: torch.Generator | None,
    *,
    affine_jitter: torch.Tensor | None = None,
    displacement: torch.Tensor | None = None,
) -> torch.Tensor:
    """Affine jitter of the 3 anchors (reflect-101 borders), then a displacement of
    alpha·gaussian_σ(U(−1, 1)) per axis (half-sample reflect borders), both bilinear.

    Severities 1–2 have large, very smooth displacements (σ 171 and 20 px) and small affine
    jitter; 3–5 fine-grained ones (σ 2.4 px). The reference builds its anchors from the
    (rows, cols) centre used as (x, y); here x comes from the width, identical on square images.
    """
    alpha, sigma, jitter_px = ELASTIC_PARAMS[severity - 1]
    batch, _, height, width = images.shape
    device = images.device
    unit_jitter = _pinned(affine_jitter, (batch, 3, 2), "affine_jitter")
    if unit_jitter is None:
        unit_jitter = 2 * torch.rand(batch, 3, 2, generator=generator, device=device) - 1
    fields = _pinned(displacement, (batch, 2, height, width), "displacement")
    if fields is None:
        fields = 2 * torch.rand(batch, 2, height, width, generator=generator, device=device) - 1
    jitter = jitter_px * unit_jitter.to(device=device, dtype=torch.float64)
    fields = fields.to(device=device, dtype=images.dtype)
    ys = torch.arange(height, dtype=torch.float64, device=device).view(1, height, 1)
    xs = torch.arange(width, dtype=torch.float64, device=device).view(1, 1, width)

    def warp(piece: torch.Tensor, jitter: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
        rows, cols = random_affine_sources(jitter, height, width)
        warped = bilinear_sample(piece, rows, cols, "mirror")
        shift = alpha * gaussian_filter(
            field, sigma, truncate=DISPLACEMENT_TRUNCATE, mode="reflect"
        )
        shift = shift.double()
        return bilinear_sample(warped, ys + shift[:, 1], xs + shift[:, 0], "reflect")

    return in_pieces(warp, images, jitter, fields)
