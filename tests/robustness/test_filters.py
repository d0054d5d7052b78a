"""The shared filters against the libraries the reference calls: SciPy's gaussian_filter, zoom
and correlate (mode 'mirror' = OpenCV's BORDER_REFLECT_101), and a NumPy transcription of
ImageMagick's motion blur."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from assembled_lightning.robustness.corruptions.filters import (
    clipped_zoom,
    extend_borders,
    filter2d_reflect101,
    gaussian_filter,
    motion_blur_kernel_shift_and_add,
)


@pytest.fixture(scope="module")
def random_images() -> np.ndarray:
    return np.random.default_rng(0).random((2, 3, 37, 29))


@pytest.mark.parametrize("mode", ["nearest", "reflect", "mirror", "wrap", "constant"])
@pytest.mark.parametrize("sigma", [0.7, 3.0, 12.0, 40.0])  # 40: radius 160 ≫ 37 × 29 image
def test_gaussian_filter_is_scipys(random_images: np.ndarray, mode: str, sigma: float) -> None:
    reference = ndimage.gaussian_filter(random_images, (0, 0, sigma, sigma), mode=mode)
    ours = gaussian_filter(torch.from_numpy(random_images), sigma, mode=mode).numpy()
    assert np.abs(ours - reference).max() < 1e-12


def test_gaussian_filter_truncate_and_float32(random_images: np.ndarray) -> None:
    reference = ndimage.gaussian_filter(
        random_images, (0, 0, 2.5, 2.5), truncate=3.0, mode="nearest"
    )
    ours = gaussian_filter(torch.from_numpy(random_images).float(), 2.5, truncate=3.0)
    assert ours.dtype == torch.float32
    assert np.abs(ours.double().numpy() - reference).max() < 1e-6


def test_gaussian_filter_rejects_bad_arguments(random_images: np.ndarray) -> None:
    with pytest.raises(ValueError, match="boundary mode"):
        gaussian_filter(torch.from_numpy(random_images), 1.0, mode="edge")
    with pytest.raises(ValueError, match="positive"):
        gaussian_filter(torch.from_numpy(random_images), 0.0)


def reference_clipped_zoom(image: np.ndarray, factor: float) -> np.ndarray:
    """make_imagenet_c.py's clipped_zoom on one H×W×C image (square crop of the height)."""
    h = image.shape[0]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    zoomed = ndimage.zoom(image[top : top + ch, top : top + ch], (factor, factor, 1), order=1)
    trim = (zoomed.shape[0] - h) // 2
    return zoomed[trim : trim + h, trim : trim + h]


@pytest.mark.parametrize("size", [224, 40, 29])
@pytest.mark.parametrize("factor", [1.0, 1.01, 1.11, 1.16, 1.28, 2.0, 2.5, 3.0, 4.5])
def test_clipped_zoom_is_the_references(size: int, factor: float) -> None:
    images = np.random.default_rng(size).random((2, size, size, 3))
    reference = np.stack([reference_clipped_zoom(image, factor) for image in images])
    ours = clipped_zoom(torch.from_numpy(images).permute(0, 3, 1, 2), factor)
    assert np.abs(ours.permute(0, 2, 3, 1).numpy() - reference).max() < 1e-12


def test_clipped_zoom_non_square_zooms_each_axis_about_its_centre() -> None:
    images = torch.rand(1, 1, 30, 50, dtype=torch.float64)
    ours = clipped_zoom(images, 2.0)
    crop = images[0, 0, 7:22, 12:37].numpy()  # centre ceil(30/2) × ceil(50/2)
    assert np.abs(ours[0, 0].numpy() - ndimage.zoom(crop, 2.0, order=1)).max() < 1e-12


def test_filter2d_reflect101_is_scipys_mirror_correlation(random_images: np.ndarray) -> None:
    kernel = np.random.default_rng(1).random((5, 7))  # asymmetric: correlation, not convolution
    reference = ndimage.correlate(random_images, kernel[None, None], mode="mirror")
    ours = filter2d_reflect101(torch.from_numpy(random_images), torch.from_numpy(kernel))
    assert np.abs(ours.numpy() - reference).max() < 1e-12
    big = (
        np.random.default_rng(2).random((41, 61)) / 2501
    )  # radii beyond the image: repeated reflections
    reference = ndimage.correlate(random_images, big[None, None], mode="mirror")
    ours = filter2d_reflect101(torch.from_numpy(random_images), torch.from_numpy(big))
    assert np.abs(ours.numpy() - reference).max() < 1e-12


NUMPY_PAD_MODES = {"mirror": "reflect", "nearest": "edge", "wrap": "wrap", "reflect": "symmetric"}


@pytest.mark.parametrize("mode", sorted(NUMPY_PAD_MODES))
@pytest.mark.parametrize("pads", [(1, 1), (4, 9), (36, 28), (50, 70)])  # the last: beyond the sides
@pytest.mark.parametrize("leading_dims", [1, 2])  # N×H×W or N×C×H×W
def test_extend_borders_is_numpys_pad(
    random_images: np.ndarray, mode: str, pads: tuple[int, int], leading_dims: int
) -> None:
    levels = np.round(random_images * 255)  # distinct integers: the int64 path is checked too
    images = levels[0] if leading_dims == 1 else levels
    pad_h, pad_w = pads
    widths = [(0, 0)] * leading_dims + [(pad_h, pad_h), (pad_w, pad_w)]
    reference = np.pad(images, widths, mode=NUMPY_PAD_MODES[mode])
    for dtype in (torch.float64, torch.float32, torch.int64):
        ours = extend_borders(torch.from_numpy(images).to(dtype), pad_h, pad_w, mode)
        assert ours.dtype == dtype
        np.testing.assert_array_equal(ours.numpy(), reference.astype(ours.numpy().dtype))


def numpy_motion_blur(image: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick's MotionBlurImage transcribed: one-sided Gaussian taps i = 0 … 2r at offsets
    (ceil(i·sin θ − ½), ceil(i·cos θ − ½)) (row, column), edges replicated. ``image`` is C×H×W."""
    taps = np.arange(2 * radius + 1)
    kernel = np.exp(-(taps**2) / (2.0 * sigma**2))
    kernel /= kernel.sum()
    _, height, width = image.shape
    out = np.zeros_like(image)
    theta = math.radians(angle)
    for i, weight in zip(taps, kernel, strict=True):
        dy = math.ceil(i * math.sin(theta) - 0.5)
        dx = math.ceil(i * math.cos(theta) - 0.5)
        rows = np.clip(np.arange(height) + dy, 0, height - 1)
        cols = np.clip(np.arange(width) + dx, 0, width - 1)
        out += weight * image[:, rows][:, :, cols]
    return out


def test_motion_blur_matches_the_imagemagick_transcription(random_images: np.ndarray) -> None:
    angles = [-37.3, 81.0]
    for radius, sigma in [(10, 3.0), (20, 15.0)]:  # radius 20 > half the image: edges repeat
        ours = motion_blur_kernel_shift_and_add(
            torch.from_numpy(random_images), radius, sigma, torch.tensor(angles)
        ).numpy()
        for image, angle, out in zip(random_images, angles, ours, strict=True):
            assert np.abs(out - numpy_motion_blur(image, radius, sigma, angle)).max() < 1e-12


def test_motion_blur_at_zero_degrees_smears_from_the_right() -> None:
    image = torch.zeros(1, 1, 3, 9, dtype=torch.float64)
    image[..., 6] = 1.0
    out = motion_blur_kernel_shift_and_add(image, 2, 1.0, torch.zeros(1))[0, 0, 1]
    kernel = np.exp(-(np.arange(5) ** 2) / 2.0)
    kernel /= kernel.sum()
    # pixel x gathers x … x+4: the bright column 6 reaches pixels 2…6 with weights k4 … k0
    expected = np.zeros(9)
    expected[2:7] = kernel[::-1]
    assert np.abs(out.numpy() - expected).max() < 1e-12


def test_motion_blur_needs_one_angle_per_image() -> None:
    with pytest.raises(ValueError, match="one per image"):
        motion_blur_kernel_shift_and_add(torch.zeros(2, 3, 8, 8), 2, 1.0, torch.zeros(3))


def test_float32_filters_stay_close_to_scipy() -> None:
    images = np.random.default_rng(3).random((2, 224, 224, 3))
    as_tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    for factor in (1.11, 1.3, 4.5):
        reference = np.stack([reference_clipped_zoom(image, factor) for image in images])
        ours = clipped_zoom(as_tensor, factor).permute(0, 2, 3, 1).double().numpy()
        # torch's float32 bilinear computes the sample positions in float32 (scipy: float64):
        # ≤ 224·2⁻²⁴ px off, 1e-5 on white noise, ≤ 0.005 grey levels
        assert np.abs(ours - reference).max() < 3e-5
    kernel = np.random.default_rng(4).random((21, 21))
    kernel /= kernel.sum()
    reference = ndimage.correlate(images, kernel[None, :, :, None], mode="mirror")
    ours = filter2d_reflect101(as_tensor, torch.from_numpy(kernel).float())
    assert np.abs(ours.permute(0, 2, 3, 1).double().numpy() - reference).max() < 1e-6
