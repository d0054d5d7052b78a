"""elastic_transform against a NumPy/SciPy transcription of the reference with the same pinned
draws: the affine warp (cv2.warpAffine: OpenCV's fixed-point source positions, bilinear,
reflect-101) through ``scipy.ndimage.map_coordinates`` with mode 'mirror', the displacement as
``gaussian_filter`` + ``map_coordinates`` with mode 'reflect', as the reference calls them."""

from __future__ import annotations

import numpy as np
import photos
import pytest
import torch
from scipy import ndimage

from assembled_lightning.robustness.corruptions import corrupt

ELASTIC = (
    (244 * 2, 244 * 0.7, 244 * 0.1),
    (244 * 2, 244 * 0.08, 244 * 0.2),
    (244 * 0.05, 244 * 0.01, 244 * 0.02),
    (244 * 0.07, 244 * 0.01, 244 * 0.02),
    (244 * 0.12, 244 * 0.01, 244 * 0.02),
)


def warp_affine_reflect101(image: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """cv2.warpAffine(image, getAffineTransform(source, target), BORDER_REFLECT_101), bilinear:
    output (x, y) reads the input at M⁻¹(x, y), which OpenCV 3.x/4.x resolves in fixed point
    (x and y parts rounded to 1/1024, plus 1/64, floored to 1/32 px); the bilinear read with
    reflect-101 taps is scipy's ``map_coordinates(order=1, mode='mirror')``."""
    height, width = image.shape[:2]
    forward = np.linalg.solve(np.concatenate([source, np.ones((3, 1))], 1), target).T  # 2×3
    linear = np.linalg.inv(forward[:, :2])
    inverse = np.concatenate([linear, -linear @ forward[:, 2:]], 1)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)

    def fixed(along_x: np.ndarray, rest: np.ndarray) -> np.ndarray:
        return np.floor((np.rint(rest * 1024) + np.rint(along_x * 1024) + 16) / 32) / 32

    cols = fixed(inverse[0, 0] * xs, inverse[0, 1] * ys + inverse[0, 2])
    rows = fixed(inverse[1, 0] * xs, inverse[1, 1] * ys + inverse[1, 2])
    channels = [
        ndimage.map_coordinates(
            image[..., k].astype(np.float64), [rows, cols], order=1, mode="mirror"
        )
        for k in range(image.shape[2])
    ]
    return np.stack(channels, axis=-1).astype(np.float32)


def scipy_elastic(
    image: np.ndarray, severity: int, unit_jitter: np.ndarray, fields: np.ndarray
) -> np.ndarray:
    """The reference (its float32 casts included) on one H×W×3 uint8 image, in 0–255, with its
    uniforms given: the anchors' U(−1, 1) jitter (3×2, (x, y)) and the two U(−1, 1) fields (dx's,
    then dy's)."""
    alpha, sigma, jitter = ELASTIC[severity - 1]
    x = np.asarray(image, dtype=np.float32) / 255.0
    height, width = x.shape[:2]
    side = min(height, width) // 3
    centre = np.float32([width // 2, height // 2])  # (x, y); the reference's are equal at 224²
    anchors = np.float32([centre + side, [centre[0] + side, centre[1] - side], centre - side])
    moved = anchors + (jitter * unit_jitter).astype(np.float32)
    warped = warp_affine_reflect101(x, anchors.astype(np.float64), moved.astype(np.float64))
    dx = (ndimage.gaussian_filter(fields[0], sigma, mode="reflect", truncate=3) * alpha).astype(
        np.float32
    )
    dy = (ndimage.gaussian_filter(fields[1], sigma, mode="reflect", truncate=3) * alpha).astype(
        np.float32
    )
    cols, rows, channels = np.meshgrid(np.arange(width), np.arange(height), np.arange(3))
    coordinates = np.stack(
        [(rows + dy[..., None]).ravel(), (cols + dx[..., None]).ravel(), channels.ravel()]
    )
    sampled = ndimage.map_coordinates(warped, coordinates, order=1, mode="reflect")
    return np.clip(sampled.reshape(x.shape), 0, 1) * 255


def draws(count: int, height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (count, 3, 2)), rng.uniform(-1, 1, (count, 2, height, width))


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_elastic_with_pinned_draws_matches_scipy(
    reference_photos: np.ndarray, severity: int
) -> None:
    jitter, fields = draws(4, 224, 224, severity)
    reference = np.stack(
        [
            scipy_elastic(im, severity, j, f)
            for im, j, f in zip(reference_photos, jitter, fields, strict=True)
        ]
    )
    pins = {"affine_jitter": torch.from_numpy(jitter), "displacement": torch.from_numpy(fields)}
    for dtype in (torch.float64, torch.float32):
        out = corrupt(
            photos.as_batch(reference_photos, dtype), "elastic_transform", severity, **pins
        )
        diff = np.abs(out.permute(0, 2, 3, 1).double().numpy() * 255 - reference)
        interior = diff[:, 8:-8, 8:-8].max() / 255
        ours = photos.as_reference_uint8(out)
        levels = np.abs(ours.astype(int) - np.uint8(reference).astype(int))
        print(
            f"elastic s{severity} {dtype}: interior max |diff| {interior:.1e} (0–1 scale), "
            f"overall {diff.max():.4f} levels; uint8 max {levels.max()}, "
            f"within 1 {(levels <= 1).mean():.5f}"
        )
        assert interior <= 1e-4
        assert levels.max() <= 2
        photos.assert_uint8_close(ours, np.uint8(reference))


def test_non_square_images_follow_the_same_recipe() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 40, 70, 3), dtype=np.uint8)
    jitter, fields = draws(2, 40, 70, 1)
    for severity in (2, 5):
        reference = np.stack(
            [
                scipy_elastic(im, severity, j, f)
                for im, j, f in zip(images, jitter, fields, strict=True)
            ]
        )
        out = corrupt(
            photos.as_batch(images),
            "elastic_transform",
            severity,
            affine_jitter=torch.from_numpy(jitter),
            displacement=torch.from_numpy(fields),
        )
        np.testing.assert_allclose(out.permute(0, 2, 3, 1).numpy() * 255, reference, atol=5e-3)


def test_random_draws_are_the_pinnable_uniforms_in_order() -> None:
    """Unpinned, the jitter and then the fields are U(−1, 1) draws from ``generator``: the same
    draws pinned give the same output, so the oracle comparison covers the random path too."""
    images = torch.rand(
        3, 3, 32, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    before = images.clone()
    drawn = corrupt(images, "elastic_transform", 1, generator=torch.Generator().manual_seed(5))
    source = torch.Generator().manual_seed(5)
    jitter = 2 * torch.rand(3, 3, 2, generator=source) - 1
    fields = 2 * torch.rand(3, 2, 32, 48, generator=source) - 1
    pinned = corrupt(images, "elastic_transform", 1, affine_jitter=jitter, displacement=fields)
    torch.testing.assert_close(drawn, pinned, rtol=0, atol=1e-12)
    torch.testing.assert_close(images, before, rtol=0, atol=0)
    again = corrupt(images, "elastic_transform", 1, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(drawn, again, rtol=0, atol=0)
    same = corrupt(images[:1].expand(2, -1, -1, -1), "elastic_transform", 3)
    assert not torch.equal(same[0], same[1])
    assert drawn.min() >= 0 and drawn.max() <= 1


def test_bad_pins_are_refused() -> None:
    with pytest.raises(ValueError, match="affine_jitter"):
        corrupt(torch.rand(2, 3, 16, 16), "elastic_transform", 1, affine_jitter=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="displacement"):
        corrupt(
            torch.rand(2, 3, 16, 16), "elastic_transform", 1, displacement=torch.zeros(2, 16, 16)
        )
