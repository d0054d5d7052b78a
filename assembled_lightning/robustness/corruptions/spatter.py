"""ImageNet-C's spatter (an "extra" corruption): water drops or mud splashed on the lens.

The reference (``make_imagenet_c.py``) thresholds a blurred Gaussian "liquid layer". Severities
1–3 ("water") turn it into embossed drop outlines with an OpenCV chain: Canny edges, a chamfer
distance transform, box blurs, histogram equalisation and an emboss kernel; the result is added
in pale turquoise. Severities 4–5 ("mud") paint the blurred layer's mask in brown.

OpenCV is not a dependency: each step is a batched torch port of OpenCV's algorithm (Canny with
its 3×3 Sobel, L1 magnitude, fixed-point direction sectors, tie rules and hysteresis; the 5×5
chamfer distance with OpenCV's float32 weights and two raster passes; ``equalizeHist``'s lookup
table; the uint8 truncation, saturation and rounding of every step). Checked stage by stage
against OpenCV 4.14 and 5.0, it gives the same edges, histograms and uint8 maps; the only
differences are float rounding (OpenCV sums path lengths and the final blend in float32). Where
the reference would divide 0 by 0 (a layer with no drop at all gives NaN), the image is left
unchanged. ``liquid_noise=`` (N×H×W, standard normal) pins the only random draw; every image gets
its own layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .filters import extend_borders, gaussian_filter
from .registry import register

SPATTER_PARAMS = (
    (0.65, 0.3, 4, 0.69, 0.6, 0),
    (0.65, 0.3, 3, 0.68, 0.6, 0),
    (0.65, 0.3, 2, 0.68, 0.5, 0),
    (0.65, 0.3, 1, 0.65, 1.5, 1),
    (0.67, 0.4, 1, 0.65, 1.5, 1),
)
"""(liquid mean, liquid std, liquid blur σ, threshold, water intensity or mud blur σ,
mode: 0 water, 1 mud)."""

WATER_RGB = (175 / 255, 238 / 255, 238 / 255)
"""Pale turquoise, added to the array's channels in this order (RGB: the reference's arrays
come from PIL)."""
MUD_RGB = (63 / 255, 42 / 255, 20 / 255)
"""Mud brown, painted over the image where the blurred mask is at least ``MUD_OPACITY``."""
MUD_OPACITY = 0.8

CANNY_LOW, CANNY_HIGH = 50, 150
"""``cv2.Canny`` thresholds on the L1 gradient magnitude of the uint8 layer."""
TAN_22_5 = 13573
"""OpenCV's tan(22.5°) in 15-bit fixed point, for Canny's gradient-direction sectors."""
DISTANCE_CAP = 20.0
"""The distance to the nearest edge is truncated here (``cv2.threshold(..., THRESH_TRUNC)``)."""
CHAMFER_STEPS = (1.0, 1.399999976158142, 2.196899890899658)
"""OpenCV's ``DIST_L2`` 5×5 chamfer weights for the steps (0, 1), (1, 1) and (1, 2): 1, 1.4 and
2.1969 as float32 (current OpenCV, 4.14 and 5.0 checked; older releases used 16-bit fixed
point, 1.4 → 1.39999)."""
EMBOSS = ((-2.0, -1.0, 0.0), (-1.0, 1.0, 1.0), (0.0, 1.0, 2.0))
"""The reference's 3×3 emboss kernel (``cv2.filter2D`` correlates, it does not flip)."""
BOX_3X3 = ((1.0, 1.0, 1.0),) * 3


def _canny(levels: torch.Tensor) -> torch.Tensor:
    """``cv2.Canny(layer, 50, 150)`` on N×H×W integer levels: a boolean edge map."""
    height, width = levels.shape[-2:]
    # 3×3 Sobel (OpenCV's Canny extends the border by replication), as exact integer sums;
    # int32 holds every value below (|g| ≤ 1020, shifted by 16 bits) at half int64's traffic
    image = F.pad(levels[:, None].float(), (1, 1, 1, 1), mode="replicate")[:, 0].int()
    across = image[:, :, 2:] - image[:, :, :-2]
    down = image[:, 2:] - image[:, :-2]
    gx = across[:, :-2] + 2 * across[:, 1:-1] + across[:, 2:]
    gy = down[:, :, :-2] + 2 * down[:, :, 1:-1] + down[:, :, 2:]
    magnitude = gx.abs() + gy.abs()
    around = F.pad(magnitude, (1, 1, 1, 1))  # OpenCV compares border pixels against 0

    def neighbour(dy: int, dx: int) -> torch.Tensor:
        return around[:, 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    along_x = gx.abs() * TAN_22_5
    scaled_y = gy.abs() << 15
    horizontal = scaled_y < along_x
    vertical = scaled_y > along_x + (gx.abs() << 16)
    same_sign = (gx ^ gy) >= 0  # OpenCV's s = +1: the diagonal from top-left to bottom-right
    diagonal_max = torch.where(
        same_sign,
        (magnitude > neighbour(-1, -1)) & (magnitude > neighbour(1, 1)),
        (magnitude > neighbour(-1, 1)) & (magnitude > neighbour(1, -1)),
    )
    peak = torch.where(
        horizontal,
        (magnitude > neighbour(0, -1)) & (magnitude >= neighbour(0, 1)),
        torch.where(
            vertical, (magnitude > neighbour(-1, 0)) & (magnitude >= neighbour(1, 0)), diagonal_max
        ),
    )
    candidate = peak & (magnitude > CANNY_LOW)
    edges = candidate & (magnitude > CANNY_HIGH)
    while True:  # hysteresis: grow the strong edges through 8-connected weak ones
        grown = _dilate_8_connected(edges) & candidate
        if torch.equal(grown, edges):
            return edges
        edges = grown


def _dilate_8_connected(mask: torch.Tensor) -> torch.Tensor:
    """N×H×W boolean ``mask`` grown by one pixel in all 8 directions (a 3×3 max filter, zero
    beyond the border) as two separable ORs: ~20× faster on the CPU than a float max-pool."""
    padded = F.pad(mask, (1, 1, 1, 1))
    rows = padded[:, :, :-2] | padded[:, :, 1:-1] | padded[:, :, 2:]
    return rows[:, :-2] | rows[:, 1:-1] | rows[:, 2:]


def _chamfer_distance(edges: torch.Tensor) -> torch.Tensor:
    """``cv2.distanceTransform(255 − edges, DIST_L2, 5)``: OpenCV's two raster passes of the
    5×5 chamfer mask, float64 (huge where an image has no edge).

    Each pass runs row by row over the whole batch; the in-row dependency on the previous pixel
    (t[j] = min(s[j], t[j∓1] + 1)) is a running minimum, min_k s[k] + |j − k|, via cummin. Path
    lengths are summed in float64, where OpenCV accumulates float32 (a difference < 1e-5 px).
    """
    straight, diagonal, knight = CHAMFER_STEPS
    batch, height, width = edges.shape
    field = torch.full(
        (batch, height + 4, width + 4), 1e30, dtype=torch.float64, device=edges.device
    )
    ramp = torch.arange(width, dtype=torch.float64, device=edges.device) * straight

    def from_rows(near: torch.Tensor, next_near: torch.Tensor) -> torch.Tensor:
        """Best value reachable from the row one step (``near``) and two steps away."""
        best = torch.minimum(next_near[:, 1:-3], next_near[:, 3:-1]) + knight
        for offset, step in ((0, knight), (1, diagonal), (2, straight), (3, diagonal), (4, knight)):
            best = torch.minimum(best, near[:, offset : offset + width] + step)
        return best

    for row in range(height):
        r = row + 2
        best = torch.where(edges[:, row], 0.0, from_rows(field[:, r - 1], field[:, r - 2]))
        field[:, r, 2:-2] = (best - ramp).cummin(dim=1).values + ramp
    for row in range(height - 1, -1, -1):
        r = row + 2
        best = torch.minimum(field[:, r, 2:-2], from_rows(field[:, r + 1], field[:, r + 2]))
        field[:, r, 2:-2] = (best + ramp).flip(1).cummin(dim=1).values.flip(1) - ramp
    return field[:, 2:-2, 2:-2]


def _correlate3(images: torch.Tensor, kernel: tuple[tuple[float, ...], ...]) -> torch.Tensor:
    """3×3 correlation of N×H×W ``images``, borders reflect-101 (OpenCV's default), as nine
    shifted additions: exact on the integer and chamfer-distance values it is used on, so
    OpenCV's rounding and truncation that follow see the same numbers (the weights are small
    integers, so each scaled addition is exact whether or not it is fused)."""
    height, width = images.shape[-2:]
    padded = extend_borders(images, 1, 1, "mirror")
    out = torch.zeros_like(images)
    for dy, weights in enumerate(kernel):
        for dx, weight in enumerate(weights):
            if weight:
                out.add_(padded[:, dy : dy + height, dx : dx + width], alpha=weight)
    return out


def _equalize_hist(levels: torch.Tensor) -> torch.Tensor:
    """``cv2.equalizeHist`` per image of N×H×W levels 0…255 (long): the lookup table
    round(255·(cdf − h₀)/(total − h₀)) in float32, from the first occupied level h₀."""
    batch = levels.shape[0]
    flat = levels.reshape(batch, -1)
    total = flat.shape[1]
    counts = torch.zeros(batch, 256, dtype=torch.long, device=levels.device)
    counts.scatter_add_(1, flat, torch.ones_like(flat))
    first = (counts > 0).long().argmax(dim=1, keepdim=True)
    first_count = counts.gather(1, first)
    above = torch.arange(256, device=levels.device)[None] > first
    cumulative = torch.where(above, counts, 0).cumsum(dim=1)
    scale = (255.0 / (total - first_count).clamp(min=1).float()).float()
    table = torch.round(cumulative.float() * scale).clamp(0, 255).long()
    table = torch.where(first_count == total, first, table)  # one level only: all set to it
    return table.gather(1, flat).view_as(levels)


def water_layer(liquid: torch.Tensor, intensity: float) -> torch.Tensor:
    """The water drops' strength per pixel, N×H×W in [0, intensity]: the thresholded liquid
    layer (uint8) times its embossed, equalised distance-to-outline map, scaled to max 1."""
    # np.uint8(·) truncates and, on x86, wraps values ≥ 256 (a blurred layer peak above 1 does)
    levels = (liquid * 255).floor().remainder(256)
    distance = _chamfer_distance(_canny(levels)).clamp(max=DISTANCE_CAP)
    # cv2.blur sums in float64, scales by 1/9 and stores float32; np.uint8 then truncates
    blurred = (_correlate3(distance, BOX_3X3) * (1.0 / 9.0)).float().floor().long()
    equalised = _equalize_hist(blurred).double()
    embossed = _correlate3(equalised, EMBOSS).clamp(0, 255)  # integer sums, saturated to uint8
    smoothed = torch.round(_correlate3(embossed, BOX_3X3) / 9)  # uint8 blur rounds
    strength = levels * smoothed
    peak = strength.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, strength / peak.clamp(min=1), 0.0) * intensity


def _liquid_noise(
    images: torch.Tensor, liquid_noise: torch.Tensor | None, generator: torch.Generator | None
) -> torch.Tensor:
    batch, _, height, width = images.shape
    if liquid_noise is None:  # float32 draws: 6× faster than float64 ones on the CPU
        noise = torch.randn(batch, height, width, generator=generator, device=images.device)
        return noise.double()
    if tuple(liquid_noise.shape) != (batch, height, width):
        raise ValueError(
            f"liquid_noise must be N×H×W {(batch, height, width)}, got {tuple(liquid_noise.shape)}"
        )
    return liquid_noise.to(device=images.device, dtype=torch.float64)


@register("spatter", "weather", inputs=("liquid_noise",))
def spatter(
    images: torch.Tensor,
    severity: int,
    generator: torch.Generator | None,
    *,
    liquid_noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Water (severities 1–3) or mud (4–5) spatter from a liquid layer loc + scale·z, z ~ N(0, 1)
    per pixel (``liquid_noise=`` pins z), blurred (σ, mode 'nearest') and zeroed below the
    threshold. Water: x + m·turquoise; mud: x·(1 − m) + m·brown."""
    loc, scale, sigma, threshold, strength, mode = SPATTER_PARAMS[severity - 1]
    liquid = loc + scale * _liquid_noise(images, liquid_noise, generator)
    liquid = gaussian_filter(liquid[:, None], sigma, mode="nearest")[:, 0]
    liquid = torch.where(liquid < threshold, 0.0, liquid)
    if mode == 0:
        colour = torch.tensor(WATER_RGB, dtype=images.dtype, device=images.device)
        drops = water_layer(liquid, strength).to(images.dtype)
        return images + drops[:, None] * colour.view(1, 3, 1, 1)
    mask = (liquid > threshold).to(images.dtype)
    mask = gaussian_filter(mask[:, None], strength, mode="nearest")
    mask = torch.where(mask < MUD_OPACITY, 0.0, mask)
    colour = torch.tensor(MUD_RGB, dtype=images.dtype, device=images.device)
    return images * (1 - mask) + mask * colour.view(1, 3, 1, 1)
