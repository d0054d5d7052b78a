"""pixelate and jpeg_compression against PIL itself, the reference's own resize and codec."""

from __future__ import annotations

import io

import numpy as np
import photos
import pytest
import torch
from PIL import Image

from assembled_lightning.robustness.corruptions import corrupt, digital

PIXELATE_SCALE = (0.6, 0.5, 0.4, 0.3, 0.25)
JPEG_QUALITY = (25, 18, 15, 10, 7)


def pil_pixelate(image: np.ndarray, scale: float) -> np.ndarray:
    """The reference's pixelate on one H×W×3 uint8 image, at its own size instead of 224."""
    height, width = image.shape[:2]
    small = Image.fromarray(image).resize((int(width * scale), int(height * scale)), Image.BOX)
    return np.asarray(small.resize((width, height), Image.BOX))


def pil_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def worst_case(ours: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    diff = np.abs(ours.astype(np.int16) - reference.astype(np.int16))
    return int(diff.max()), float((diff <= 1).mean())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_pixelate_matches_pil_box_on_the_photos(
    reference_photos: np.ndarray, severity: int, dtype: torch.dtype
) -> None:
    ours = photos.as_reference_uint8(
        corrupt(photos.as_batch(reference_photos, dtype), "pixelate", severity)
    )
    reference = np.stack(
        [pil_pixelate(image, PIXELATE_SCALE[severity - 1]) for image in reference_photos]
    )
    worst, within = worst_case(ours, reference)
    print(f"pixelate s{severity} {dtype}: max |diff| {worst}, within 1 level {within:.5f}")
    assert worst == 0


@pytest.mark.parametrize(("height", "width"), [(37, 53), (40, 31), (5, 9), (17, 100)])
def test_pixelate_matches_pil_on_other_sizes_and_noisy_content(height: int, width: int) -> None:
    """Non-square sides and sizes whose box edges fall anywhere: PIL's rounding of every
    fixed-point weight is reproduced, not only at 224. (No image over 2× taller than wide:
    there Pillow ≥ 13 changed its pass order, see ``digital._box_resize``.)"""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, height, width, 3), dtype=np.uint8)
    for severity, scale in enumerate(PIXELATE_SCALE, 1):
        ours = photos.as_reference_uint8(corrupt(photos.as_batch(images), "pixelate", severity))
        reference = np.stack([pil_pixelate(image, scale) for image in images])
        np.testing.assert_array_equal(ours, reference)


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_jpeg_matches_pil_on_the_photos(reference_photos: np.ndarray, severity: int) -> None:
    ours = photos.as_reference_uint8(
        corrupt(photos.as_batch(reference_photos, torch.float32), "jpeg_compression", severity)
    )
    reference = np.stack(
        [pil_jpeg(image, JPEG_QUALITY[severity - 1]) for image in reference_photos]
    )
    worst, within = worst_case(ours, reference)
    print(f"jpeg s{severity}: max |diff| {worst}, within 1 level {within:.5f}")
    assert worst == 0


def test_jpeg_roundtrip_is_pil_on_uint8_batches(reference_photos: np.ndarray) -> None:
    """The helper behind jpeg_compression and the release-faithful quantisation (quality 85)."""
    batch = torch.from_numpy(reference_photos).permute(0, 3, 1, 2)
    out = digital.jpeg_roundtrip(batch, 85)
    assert out.dtype == torch.uint8 and out.shape == batch.shape
    expected = np.stack([pil_jpeg(image, 85) for image in reference_photos])
    np.testing.assert_array_equal(out.permute(0, 2, 3, 1).numpy(), expected)


def test_float_inputs_are_truncated_like_np_uint8_before_encoding() -> None:
    """A float image between grey levels is seen as its floor level, as the reference's
    ``np.uint8`` makes it (its pipeline truncates before PIL ever sees the image)."""
    levels = torch.randint(0, 255, (2, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    between = (levels.double() + 0.7) / 255
    exact = levels.double() / 255
    for name in ("pixelate", "jpeg_compression"):
        torch.testing.assert_close(
            corrupt(between, name, 3), corrupt(exact, name, 3), rtol=0, atol=0
        )


@pytest.mark.parametrize("name", ["pixelate", "jpeg_compression"])
def test_outputs_are_grey_levels_in_range_and_input_untouched(name: str) -> None:
    images = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(1))
    before = images.clone()
    out = corrupt(images, name, 5)
    assert out.shape == images.shape and out.dtype == images.dtype
    torch.testing.assert_close(images, before, rtol=0, atol=0)
    levels = out.double() * 255
    torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-4)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["pixelate", "jpeg_compression"])
def test_cuda_gives_the_cpu_result(reference_photos: np.ndarray, name: str) -> None:
    batch = photos.as_batch(reference_photos, torch.float32)
    for severity in (1, 5):
        on_gpu = corrupt(batch.cuda(), name, severity)
        assert on_gpu.is_cuda
        torch.testing.assert_close(on_gpu.cpu(), corrupt(batch, name, severity), rtol=0, atol=0)
