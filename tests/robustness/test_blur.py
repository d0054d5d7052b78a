"""The blur corruptions against NumPy/SciPy transcriptions of ``make_imagenet_c.py`` on the real
photos (uint8 after the reference's truncation), and their random parts by statistics."""

from __future__ import annotations

import math

import numpy as np
import photos
import pytest
import torch
from scipy import ndimage
from test_filters import numpy_motion_blur, reference_clipped_zoom

from assembled_lightning.robustness.corruptions import corrupt
from assembled_lightning.robustness.corruptions.blur import (
    GLASS,
    defocus_kernel,
    glass_offsets,
    shuffle_pixels,
    uniform_angles,
    zoom_factors,
)

SEVERITIES = (1, 2, 3, 4, 5)


def report(name: str, ours: np.ndarray, reference: np.ndarray, max_diff: int = 1) -> None:
    """Print the worst case, then assert the issue's criterion."""
    diff = np.abs(ours.astype(np.int16) - reference.astype(np.int16))
    print(
        f"{name}: max |diff| {int(diff.max())}, within {max_diff}: "
        f"{float((diff <= max_diff).mean()):.6f}, exact {float((diff == 0).mean()):.6f}"
    )
    photos.assert_uint8_close(ours, reference, max_diff=max_diff)


def reference_disk(radius: int, alias_blur: float) -> np.ndarray:
    """make_imagenet_c.py's disk: float32 disk, then cv2.GaussianBlur (closed-form kernel,
    reflect-101 = SciPy's 'mirror', float32 arithmetic)."""
    if radius <= 8:
        grid, ksize = np.arange(-8, 8 + 1), 3
    else:
        grid, ksize = np.arange(-radius, radius + 1), 5
    xx, yy = np.meshgrid(grid, grid)
    disk = np.array((xx**2 + yy**2) <= radius**2, dtype=np.float32)
    disk /= np.sum(disk)
    t = np.arange(ksize) - (ksize - 1) / 2
    gauss = np.exp(-(t**2) / (2 * alias_blur**2))
    gauss = (gauss / gauss.sum()).astype(np.float32)
    disk = ndimage.correlate1d(disk, gauss, axis=0, mode="mirror")
    return ndimage.correlate1d(disk, gauss, axis=1, mode="mirror")


@pytest.mark.parametrize(
    ("radius", "alias_blur", "size"), [(3, 0.1, 17), (4, 0.5, 17), (8, 0.5, 17), (10, 0.5, 21)]
)
def test_defocus_kernel_is_the_references(radius: int, alias_blur: float, size: int) -> None:
    ours = defocus_kernel(radius, alias_blur)
    assert ours.dtype == torch.float32 and ours.shape == (size, size)
    assert np.abs(ours.numpy() - reference_disk(radius, alias_blur)).max() < 1e-8


def test_defocus_blur_matches_the_reference(reference_photos: np.ndarray) -> None:
    constants = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)]
    images = photos.as_batch(reference_photos)
    for severity, (radius, alias_blur) in zip(SEVERITIES, constants, strict=True):
        kernel = reference_disk(radius, alias_blur).astype(np.float64)[None, :, :, None]
        expected = ndimage.correlate(reference_photos / 255.0, kernel, mode="mirror")
        reference = np.uint8(np.clip(expected, 0, 1) * 255)
        ours = photos.as_reference_uint8(corrupt(images, "defocus_blur", severity))
        report(f"defocus_blur s{severity}", ours, reference)


def test_gaussian_blur_matches_the_reference(reference_photos: np.ndarray) -> None:
    images = photos.as_batch(reference_photos)
    for severity, sigma in zip(SEVERITIES, (1, 2, 3, 4, 6), strict=True):
        expected = ndimage.gaussian_filter(
            reference_photos / 255.0, (0, sigma, sigma, 0), mode="nearest", truncate=4.0
        )
        reference = np.uint8(np.clip(expected, 0, 1) * 255)
        ours = photos.as_reference_uint8(corrupt(images, "gaussian_blur", severity))
        report(f"gaussian_blur s{severity}", ours, reference)


def test_zoom_factors_are_numpys_float_arange() -> None:
    arguments = [(1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02)]
    arguments.append((1, 1.31, 0.03))
    counts = [len(zoom_factors(severity)) for severity in SEVERITIES]
    assert counts == [12, 16, 11, 13, 11]
    for severity, args in zip(SEVERITIES, arguments, strict=True):
        np.testing.assert_allclose(zoom_factors(severity), np.arange(*args), rtol=0, atol=1e-15)


def test_zoom_blur_matches_the_reference(reference_photos: np.ndarray) -> None:
    images = photos.as_batch(reference_photos, torch.float32)  # the reference works in float32
    x = (reference_photos / 255.0).astype(np.float32)
    for severity in SEVERITIES:
        factors = zoom_factors(severity)
        total = np.zeros_like(x)
        for factor in factors:
            total += np.stack([reference_clipped_zoom(image, factor) for image in x])
        reference = np.uint8(np.clip((x + total) / (len(factors) + 1), 0, 1) * 255)
        ours = photos.as_reference_uint8(corrupt(images, "zoom_blur", severity))
        report(f"zoom_blur s{severity}", ours, reference)


def test_motion_blur_matches_the_imagemagick_transcription(reference_photos: np.ndarray) -> None:
    constants = [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)]
    images = photos.as_batch(reference_photos)
    angles = np.array([-44.0, -12.5, 0.0, 37.9])
    for severity, (radius, sigma) in zip(SEVERITIES, constants, strict=True):
        # ImageMagick blurs the 8-bit PNG and writes an 8-bit PNG back: rounded levels
        reference = np.stack(
            [
                np.round(numpy_motion_blur(photo.transpose(2, 0, 1) * 1.0, radius, sigma, angle))
                for photo, angle in zip(reference_photos, angles, strict=True)
            ]
        )
        reference = np.uint8(np.clip(reference, 0, 255)).transpose(0, 2, 3, 1)
        out = corrupt(images, "motion_blur", severity, angle=torch.from_numpy(angles))
        report(f"motion_blur s{severity}", photos.as_reference_uint8(out), reference)


def test_motion_blur_angles_are_uniform_in_plus_minus_45() -> None:
    angles = uniform_angles(
        20000, -45.0, 45.0, torch.Generator().manual_seed(0), torch.device("cpu")
    )
    assert angles.min() >= -45 and angles.max() < 45
    assert abs(float(angles.mean())) < 0.5  # standard error 0.18°
    assert abs(float(angles.std()) - 90 / math.sqrt(12)) < 0.5
    images = torch.rand(3, 3, 32, 32)
    seeded = corrupt(images, "motion_blur", 2, generator=torch.Generator().manual_seed(5))
    drawn = uniform_angles(3, -45.0, 45.0, torch.Generator().manual_seed(5), torch.device("cpu"))
    torch.testing.assert_close(seeded, corrupt(images, "motion_blur", 2, angle=drawn))


def reference_glass_scan(levels: np.ndarray, offsets: np.ndarray, d: int) -> np.ndarray:
    """One pass of the reference loop over an H×W×3 uint8 image, with offsets[h, w] = (dy, dx)
    in place of ``np.random.randint(-d, d, size=(2,))`` (whose draw order is dx, dy)."""
    x = levels.copy()
    height, width = x.shape[:2]
    for h in range(height - d, d, -1):
        for w in range(width - d, d, -1):
            dy, dx = offsets[h, w]
            h_prime, w_prime = h + dy, w + dx
            x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]  # a copy on views
    return x


def reference_glass_blur(photo: np.ndarray, severity: int, offsets: np.ndarray) -> np.ndarray:
    sigma, d, iterations = GLASS[severity - 1]
    x = np.uint8(ndimage.gaussian_filter(photo / 255.0, (sigma, sigma, 0), mode="nearest") * 255)
    for scan in range(iterations):
        x = reference_glass_scan(x, offsets[scan], d)
    blurred = ndimage.gaussian_filter(x / 255.0, (sigma, sigma, 0), mode="nearest")
    return np.uint8(np.clip(blurred, 0, 1) * 255)


def test_glass_scan_is_exactly_the_reference_loop(reference_photos: np.ndarray) -> None:
    crops = reference_photos[:, 92:132, 100:140]  # 40 × 40: the Python loop stays fast
    rng = np.random.default_rng(0)
    for d in (1, 2, 3, 4):
        offsets = rng.integers(-d, d, size=(4, 40, 40, 2))
        ours = shuffle_pixels(
            torch.from_numpy(crops).permute(0, 3, 1, 2), torch.from_numpy(offsets), d
        )
        for crop, offset, out in zip(crops, offsets, ours, strict=True):
            reference = reference_glass_scan(crop, offset, d)
            np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), reference)
            assert (reference != crop).mean() > 0.4  # the scan moved most pixels


def test_glass_blur_matches_the_reference(reference_photos: np.ndarray) -> None:
    crops = reference_photos[:, 92:132, 100:140]
    rng = np.random.default_rng(1)
    for severity in SEVERITIES:
        _, d, iterations = GLASS[severity - 1]
        offsets = rng.integers(-d, d, size=(iterations, 4, 40, 40, 2))
        reference = np.stack(
            [reference_glass_blur(crop, severity, offsets[:, i]) for i, crop in enumerate(crops)]
        )
        out = corrupt(photos.as_batch(crops), "glass_blur", severity, offsets=offsets)
        report(f"glass_blur 40px s{severity}", photos.as_reference_uint8(out), reference)
    # one full 224-px photo at the strongest severity (d = 4, 2 scans ≈ 0.6 s of Python)
    offsets = rng.integers(-4, 4, size=(2, 224, 224, 2))
    reference = reference_glass_blur(reference_photos[1], 5, offsets)
    out = corrupt(photos.as_batch(reference_photos[1:2]), "glass_blur", 5, offsets=offsets)
    report("glass_blur 224px s5", photos.as_reference_uint8(out)[0], reference)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_glass_offsets_are_uniform_on_the_references_range(d: int) -> None:
    draws = glass_offsets((1, 4, 64, 64), d, torch.Generator().manual_seed(d), torch.device("cpu"))
    values, counts = torch.unique(draws, return_counts=True)
    assert values.tolist() == list(range(-d, d))  # np.random.randint(-d, d): d itself never
    expected = draws.numel() / (2 * d)
    assert (counts - expected).abs().max() < 5 * math.sqrt(expected)
    # the two components and neighbouring pixels are drawn independently
    correlation = torch.corrcoef(draws.reshape(-1, 2).T.double())[0, 1]
    assert abs(float(correlation)) < 0.02
    # drawn as int8, they are the values a long draw from the same seed gives
    long_draws = torch.randint(
        -d, d, (1, 4, 64, 64, 2), generator=torch.Generator().manual_seed(d), dtype=torch.long
    )
    assert torch.equal(draws.long(), long_draws)


def test_glass_blur_random_path_draws_those_offsets() -> None:
    images = torch.rand(2, 3, 24, 24, dtype=torch.float64)
    seeded = corrupt(images, "glass_blur", 4, generator=torch.Generator().manual_seed(3))
    offsets = glass_offsets((2, 2, 24, 24), 3, torch.Generator().manual_seed(3), images.device)
    torch.testing.assert_close(seeded, corrupt(images, "glass_blur", 4, offsets=offsets))
    shared = corrupt(images, "glass_blur", 4, offsets=offsets[:, 0])
    torch.testing.assert_close(shared[0], seeded[0])


def test_glass_blur_rejects_offsets_outside_the_range() -> None:
    images = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="offsets in"):
        corrupt(images, "glass_blur", 1, offsets=torch.ones(2, 1, 16, 16, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        corrupt(images, "glass_blur", 1, offsets=torch.zeros(1, 1, 16, 16, 2, dtype=torch.long))


@pytest.mark.parametrize(
    "name", ["defocus_blur", "gaussian_blur", "zoom_blur", "motion_blur", "glass_blur"]
)
def test_blurs_are_reproducible_per_image_and_leave_the_input(name: str) -> None:
    image = torch.rand(1, 3, 40, 40)
    images = image.expand(3, -1, -1, -1).clone()
    before = images.clone()
    first = corrupt(images, name, 3, generator=torch.Generator().manual_seed(0))
    again = corrupt(images, name, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.testing.assert_close(images, before, rtol=0, atol=0)
    assert first.dtype == images.dtype and first.min() >= 0 and first.max() <= 1
    random = name in ("motion_blur", "glass_blur")
    assert (not torch.equal(first[0], first[1])) == random  # each image its own draws
