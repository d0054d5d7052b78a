"""spatter against a NumPy/SciPy transcription of the reference's OpenCV chain, with the same
pinned liquid layer: Canny (same Sobel, L1 magnitude and fixed-point direction rule; hysteresis
by ``scipy.ndimage.label`` instead of iterated dilation), the chamfer distance by brute force
over all mask paths (instead of two raster passes), box blurs and emboss by
``scipy.ndimage.correlate(mode='mirror')`` (= reflect-101) and equalizeHist's lookup table."""

from __future__ import annotations

import numpy as np
import photos
import pytest
import torch
from scipy import ndimage

from assembled_lightning.robustness.corruptions import corrupt

SPATTER = (
    (0.65, 0.3, 4, 0.69, 0.6, 0),
    (0.65, 0.3, 3, 0.68, 0.6, 0),
    (0.65, 0.3, 2, 0.68, 0.5, 0),
    (0.65, 0.3, 1, 0.65, 1.5, 1),
    (0.67, 0.4, 1, 0.65, 1.5, 1),
)
STEP_1, STEP_DIAGONAL, STEP_KNIGHT = 1.0, float(np.float32(1.4)), float(np.float32(2.1969))


def canny(levels: np.ndarray, low: int = 50, high: int = 150) -> np.ndarray:
    """cv2.Canny(levels, 50, 150) on an H×W integer array: boolean edges."""
    padded = np.pad(levels.astype(np.int64), 1, mode="edge")
    gx = ndimage.correlate(padded, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]))[1:-1, 1:-1]
    gy = ndimage.correlate(padded, np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]))[1:-1, 1:-1]
    mag = np.abs(gx) + np.abs(gy)
    around = np.pad(mag, 1)
    height, width = mag.shape

    def at(dy: int, dx: int) -> np.ndarray:
        return around[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    tg22 = np.abs(gx) * 13573  # tan(22.5°)·2¹⁵, OpenCV's sector boundaries
    scaled_y = np.abs(gy) * 2**15
    horizontal, vertical = scaled_y < tg22, scaled_y > tg22 + np.abs(gx) * 2**16
    same_sign = (gx >= 0) == (gy >= 0)
    diagonal = np.where(
        same_sign, (mag > at(-1, -1)) & (mag > at(1, 1)), (mag > at(-1, 1)) & (mag > at(1, -1))
    )
    peak = np.where(
        horizontal,
        (mag > at(0, -1)) & (mag >= at(0, 1)),
        np.where(vertical, (mag > at(-1, 0)) & (mag >= at(1, 0)), diagonal),
    )
    candidate = peak & (mag > low)
    labels, _ = ndimage.label(candidate, structure=np.ones((3, 3)))
    strong = np.unique(labels[candidate & (mag > high)])
    return np.isin(labels, strong[strong > 0])


def chamfer_distance_capped(edges: np.ndarray, cap: float = 20.0) -> np.ndarray:
    """min(cap, 5×5 chamfer distance to the nearest edge), by brute force: every offset's cheapest
    path of (1,0), (1,1) and (2,1) steps, in closed form, minimised over the shifted edge maps."""
    height, width = edges.shape
    reach = int(cap) + 1
    best = np.full(edges.shape, cap)
    padded = np.pad(edges, reach)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            long_side, short_side = max(abs(dy), abs(dx)), min(abs(dy), abs(dx))
            if long_side >= 2 * short_side:
                cost = short_side * STEP_KNIGHT + (long_side - 2 * short_side) * STEP_1
            else:
                cost = (long_side - short_side) * STEP_KNIGHT + (
                    2 * short_side - long_side
                ) * STEP_DIAGONAL
            if cost < cap:
                shifted = padded[reach + dy : reach + dy + height, reach + dx : reach + dx + width]
                best = np.where(shifted, np.minimum(best, cost), best)
    return best


def equalize_hist(levels: np.ndarray) -> np.ndarray:
    counts = np.bincount(levels.ravel(), minlength=256)
    first = int(np.flatnonzero(counts)[0])
    if counts[first] == levels.size:
        return np.full_like(levels, first)
    scale = np.float32(255.0) / np.float32(levels.size - counts[first])
    cumulative = np.cumsum(np.where(np.arange(256) > first, counts, 0)).astype(np.float32)
    table = np.clip(np.rint(cumulative * scale), 0, 255).astype(np.int64)
    return table[levels]


def box3(values: np.ndarray) -> np.ndarray:
    return ndimage.correlate(values, np.ones((3, 3)), mode="mirror")


def numpy_spatter(image: np.ndarray, severity: int, noise: np.ndarray) -> np.ndarray:
    """The reference's spatter on one H×W×3 uint8 image, in 0–255, given its N(0, 1) draw."""
    loc, scale, sigma, threshold, strength, mode = SPATTER[severity - 1]
    x = np.asarray(image, dtype=np.float32) / 255.0
    liquid = ndimage.gaussian_filter(loc + scale * noise, sigma, mode="nearest", truncate=4)
    liquid[liquid < threshold] = 0
    if mode == 0:
        levels = (liquid * 255).astype(np.uint8).astype(np.int64)
        distance = chamfer_distance_capped(canny(levels))
        blurred = (box3(distance) * (1.0 / 9.0)).astype(np.float32).astype(np.int64)
        emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
        embossed = np.clip(ndimage.correlate(equalize_hist(blurred), emboss, mode="mirror"), 0, 255)
        smoothed = np.rint(box3(embossed) / 9.0).astype(np.float32)
        drops = levels * smoothed
        drops = drops / drops.max() * strength
        colour = np.array([175, 238, 238], dtype=np.float32) / 255
        return np.clip(x + drops[..., None] * colour, 0, 1) * 255
    mask = ndimage.gaussian_filter(
        (liquid > threshold).astype(np.float32), strength, mode="nearest"
    )
    mask[mask < 0.8] = 0
    colour = np.array([63, 42, 20]) / 255.0
    return np.clip(x * (1 - mask[..., None]) + colour * mask[..., None], 0, 1) * 255


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_spatter_with_a_pinned_layer_matches_the_transcription(
    reference_photos: np.ndarray, severity: int
) -> None:
    noise = np.random.default_rng(severity).standard_normal(reference_photos.shape[:3])
    reference = np.stack(
        [numpy_spatter(im, severity, z) for im, z in zip(reference_photos, noise, strict=True)]
    )
    for dtype in (torch.float64, torch.float32):
        out = corrupt(
            photos.as_batch(reference_photos, dtype),
            "spatter",
            severity,
            liquid_noise=torch.from_numpy(noise),
        )
        float_diff = np.abs(out.permute(0, 2, 3, 1).double().numpy() * 255 - reference)
        ours = photos.as_reference_uint8(out)
        levels = np.abs(ours.astype(int) - np.uint8(reference).astype(int))
        print(
            f"spatter s{severity} {dtype}: float max |diff| {float_diff.max():.2e} levels "
            f"(> 0.01 on {(float_diff > 0.01).mean():.5f}); uint8 max {levels.max()}, "
            f"within 1 {(levels <= 1).mean():.5f}"
        )
        photos.assert_uint8_close(ours, np.uint8(reference))
        assert (float_diff > 0.01).mean() < 1e-3


def test_non_square_images_match_too() -> None:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (2, 48, 80, 3), dtype=np.uint8)
    noise = rng.standard_normal((2, 48, 80))
    for severity in (1, 3, 4):
        reference = np.stack(
            [numpy_spatter(im, severity, z) for im, z in zip(images, noise, strict=True)]
        )
        out = corrupt(
            photos.as_batch(images), "spatter", severity, liquid_noise=torch.from_numpy(noise)
        )
        np.testing.assert_allclose(out.permute(0, 2, 3, 1).numpy() * 255, reference, atol=1e-3)


def test_random_layer_is_the_pinnable_normal_draw() -> None:
    images = torch.rand(
        3, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    before = images.clone()
    for severity in (2, 5):
        drawn = corrupt(images, "spatter", severity, generator=torch.Generator().manual_seed(1))
        # drawn as float32 standard normals (6× faster than float64 ones on the CPU)
        noise = torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(1))
        pinned = corrupt(images, "spatter", severity, liquid_noise=noise)
        torch.testing.assert_close(drawn, pinned, rtol=0, atol=0)
        assert drawn.min() >= 0 and drawn.max() <= 1
        assert not torch.equal(drawn[0] - images[0], drawn[1] - images[1])
    torch.testing.assert_close(images, before, rtol=0, atol=0)


def test_water_only_brightens_towards_turquoise_and_mud_only_darkens_to_brown() -> None:
    """Closed-form properties over a batch of random layers: water adds m·(175, 238, 238)/255
    with m ≥ 0, so the channel increments keep that ratio; mud replaces pixels by a convex mix
    with (63, 42, 20)/255."""
    images = torch.full((4, 3, 64, 64), 0.3, dtype=torch.float64)
    water = corrupt(images, "spatter", 1, generator=torch.Generator().manual_seed(2)) - images
    assert (water >= 0).all() and (water > 0).float().mean() > 0.01
    torch.testing.assert_close(water[:, 0] * 238, water[:, 1] * 175)
    torch.testing.assert_close(water[:, 1], water[:, 2])
    mud = corrupt(images, "spatter", 5, generator=torch.Generator().manual_seed(2))
    weight = (mud[:, 0] - 0.3) / (63 / 255 - 0.3)
    assert (weight >= -1e-12).all() and (weight <= 1 + 1e-12).all() and (weight > 0).any()
    torch.testing.assert_close(mud[:, 2], 0.3 + weight * (20 / 255 - 0.3))


def test_a_badly_shaped_layer_is_refused() -> None:
    with pytest.raises(ValueError, match="liquid_noise"):
        corrupt(torch.rand(2, 3, 16, 16), "spatter", 1, liquid_noise=torch.zeros(16, 16))
