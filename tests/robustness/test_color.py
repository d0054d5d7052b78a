"""brightness, saturate and contrast against a NumPy transcription of the reference.

The oracle is written from the reference's formulas (``make_imagenet_c.py`` with scikit-image's
``rgb2hsv``/``hsv2rgb``) on H×W×3 float64 arrays, independently of the torch code: masked
assignments in scikit-image's order for the hue, and explicit per-sector selection for the way
back.
"""

from __future__ import annotations

import numpy as np
import photos
import pytest
import torch

from assembled_lightning.robustness.corruptions import corrupt, get_corruption
from assembled_lightning.robustness.corruptions.color import hsv_to_rgb, rgb_to_hsv

BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
SATURATE = ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))
CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)


def np_rgb2hsv(rgb: np.ndarray) -> np.ndarray:
    """scikit-image's rgb2hsv: V = max, S = (max − min) / max, H by the channel holding the max
    (later channels overwrite earlier ones on ties), 0 where max = min."""
    out = np.empty_like(rgb)
    value = rgb.max(-1)
    delta = value - rgb.min(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        saturation = delta / value
        hue = np.zeros_like(value)
        red_max = rgb[..., 0] == value
        hue[red_max] = (rgb[..., 1] - rgb[..., 2])[red_max] / delta[red_max]
        green_max = rgb[..., 1] == value
        hue[green_max] = 2.0 + (rgb[..., 2] - rgb[..., 0])[green_max] / delta[green_max]
        blue_max = rgb[..., 2] == value
        hue[blue_max] = 4.0 + (rgb[..., 0] - rgb[..., 1])[blue_max] / delta[blue_max]
    saturation[delta == 0] = 0
    hue = (hue / 6.0) % 1.0
    hue[delta == 0] = 0
    out[..., 0], out[..., 1], out[..., 2] = hue, saturation, value
    out[np.isnan(out)] = 0
    return out


def np_hsv2rgb(hsv: np.ndarray) -> np.ndarray:
    """scikit-image's hsv2rgb: sector i = floor(6h) mod 6 with f = 6h − floor(6h)."""
    hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sector_float = np.floor(hue * 6)
    f = hue * 6 - sector_float
    sector = sector_float.astype(np.uint8) % 6
    p = value * (1 - saturation)
    q = value * (1 - f * saturation)
    t = value * (1 - (1 - f) * saturation)
    rows = {
        0: (value, t, p),
        1: (q, value, p),
        2: (p, value, t),
        3: (p, q, value),
        4: (t, p, value),
        5: (value, p, q),
    }
    out = np.zeros_like(hsv)
    for index, channels in rows.items():
        where = sector == index
        for channel, source in enumerate(channels):
            out[..., channel][where] = source[where]
    return out


def reference(name: str, image: np.ndarray, severity: int) -> np.ndarray:
    """The reference corruption on one H×W×3 uint8 image, float in [0, 255] before np.uint8."""
    x = image / 255.0
    if name == "contrast":
        means = np.mean(x, axis=(0, 1), keepdims=True)
        return np.clip((x - means) * CONTRAST[severity - 1] + means, 0, 1) * 255
    hsv = np_rgb2hsv(x)
    if name == "brightness":
        hsv[..., 2] = np.clip(hsv[..., 2] + BRIGHTNESS[severity - 1], 0, 1)
    else:
        scale, shift = SATURATE[severity - 1]
        hsv[..., 1] = np.clip(hsv[..., 1] * scale + shift, 0, 1)
    return np.clip(np_hsv2rgb(hsv), 0, 1) * 255


def colour_ramps() -> np.ndarray:
    """Every hue at several saturations and values, the primaries and greys: all six hue
    sectors, every max-channel tie and the grey (max = min) case."""
    levels = np.array([0, 1, 17, 64, 127, 128, 200, 254, 255], dtype=np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(27, 27, 3)
    return grid[None]


NAMES = ("brightness", "saturate", "contrast")


@pytest.mark.parametrize("name", NAMES)
def test_float64_matches_the_reference_formula(reference_photos: np.ndarray, name: str) -> None:
    for images in (reference_photos, colour_ramps()):
        batch = photos.as_batch(images, torch.float64)
        for severity in range(1, 6):
            ours = corrupt(batch, name, severity).permute(0, 2, 3, 1).numpy() * 255
            expected = np.stack([reference(name, image, severity) for image in images])
            worst = float(np.abs(ours - expected).max())
            print(f"{name} s{severity} float64: max |diff| {worst:.2e} (0–255 scale)")
            assert worst <= 1e-6 * 255


@pytest.mark.parametrize("name", NAMES)
def test_float32_uint8_within_one_level(reference_photos: np.ndarray, name: str) -> None:
    """The issue's criterion: after np.uint8 truncation, ≤ 1 level on ≥ 99.9 % of values."""
    batch = photos.as_batch(reference_photos, torch.float32)
    for severity in range(1, 6):
        ours = photos.as_reference_uint8(corrupt(batch, name, severity))
        expected = np.uint8(
            np.stack([reference(name, image, severity) for image in reference_photos])
        )
        diff = np.abs(ours.astype(np.int16) - expected)
        print(
            f"{name} s{severity} float32→uint8: max {diff.max()}, "
            f"equal {(diff == 0).mean():.5f}, ≤1: {(diff <= 1).mean():.5f}"
        )
        photos.assert_uint8_close(ours, expected)


def test_hsv_round_trip_and_conversions_match_the_transcription() -> None:
    ramps = photos.as_batch(colour_ramps(), torch.float64)
    hsv = rgb_to_hsv(ramps)
    expected = np_rgb2hsv(ramps.permute(0, 2, 3, 1).numpy())
    np.testing.assert_allclose(hsv.permute(0, 2, 3, 1).numpy(), expected, rtol=0, atol=1e-12)
    back = hsv_to_rgb(hsv)
    np.testing.assert_allclose(
        back.permute(0, 2, 3, 1).numpy(), np_hsv2rgb(expected), rtol=0, atol=1e-12
    )
    torch.testing.assert_close(back, ramps, rtol=0, atol=1e-12)
    # hue exactly 1 is sector 6, which scikit-image folds back to sector 0
    edge = torch.tensor([1.0, 0.5, 0.8], dtype=torch.float64).view(1, 3, 1, 1)
    np.testing.assert_allclose(
        hsv_to_rgb(edge).flatten().numpy(), np_hsv2rgb(edge.view(1, 1, 3).numpy()).flatten()
    )


def test_groups_follow_the_released_tar_files() -> None:
    assert get_corruption("brightness").group == "weather"
    assert get_corruption("contrast").group == "digital"
    assert get_corruption("saturate").group == "digital"


@pytest.mark.parametrize("name", NAMES)
def test_per_image_statistics_dtype_and_input_untouched(name: str) -> None:
    """Contrast's mean is each image's own: a batch gives what the images give one by one."""
    images = torch.rand(3, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    before = images.clone()
    out = corrupt(images, name, 4)
    assert out.dtype == images.dtype and out.shape == images.shape
    torch.testing.assert_close(images, before, rtol=0, atol=0)
    one_by_one = torch.cat([corrupt(image[None], name, 4) for image in images])
    torch.testing.assert_close(out, one_by_one)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_gives_the_cpu_result(reference_photos: np.ndarray, name: str) -> None:
    batch = photos.as_batch(reference_photos, torch.float64)
    for severity in (1, 5):
        on_gpu = corrupt(batch.cuda(), name, severity)
        assert on_gpu.is_cuda
        torch.testing.assert_close(on_gpu.cpu(), corrupt(batch, name, severity), rtol=0, atol=1e-12)
