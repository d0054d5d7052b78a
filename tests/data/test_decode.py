"""decode_image: every image kind becomes RGB uint8 [3, H, W]; bad files raise clearly."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from assembled_lightning.data import ImageDecodeError, decode_image

rng = np.random.default_rng(0)
RGB = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)


def save(image: Image.Image, path: Path, **options: Any) -> Path:
    image.save(path, **options)
    return path


def hwc(image: torch.Tensor) -> np.ndarray:
    assert image.dtype == torch.uint8 and image.dim() == 3 and image.shape[0] == 3
    return image.permute(1, 2, 0).numpy()


def jpeg_bytes(pixels: np.ndarray, **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def test_rgb_jpeg_is_pillows_default_decode(tmp_path: Path) -> None:
    path = save(Image.fromarray(RGB), tmp_path / "a.jpg", quality=95)
    decoded = decode_image(path)
    assert decoded.shape == (3, 12, 10)
    assert np.array_equal(hwc(decoded), np.asarray(Image.open(path)))
    assert torch.equal(decode_image(str(path)), decoded)


PHOTOS = Path(__file__).resolve().parents[2].parent / "shared/reference/tf/preprocessing"


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize(
    "options", [{}, {"progressive": True}, {"subsampling": 0}, {"quality": 30}], ids=str
)
def test_jpegs_decode_to_pillows_pixels_on_either_decoder(
    mode: str, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain JPEGs take torchvision's libjpeg-turbo, others Pillow: the pixels must be Pillow's
    (the original's INTEGER_ACCURATE decode) either way, with or without torchvision's IO."""
    photos = sorted(PHOTOS.glob("*.jpg"))
    if not photos:
        pytest.fail(f"reference photos not found in {PHOTOS} (the shared/ folder)")
    for photo in photos[:2]:
        with Image.open(photo) as image:
            buffer = io.BytesIO()
            image.convert(mode).save(buffer, format="JPEG", **options)
        data = buffer.getvalue()
        expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert np.array_equal(hwc(decode_image(data)), expected), photo.name
        with monkeypatch.context() as patch:
            patch.setitem(sys.modules, "torchvision.io", None)  # no image IO
            assert np.array_equal(hwc(decode_image(data)), expected), photo.name


def test_grayscale_kinds_become_three_equal_channels(tmp_path: Path) -> None:
    gray = RGB[..., 0]
    deep = gray.astype(np.uint16) * 256 + rng.integers(0, 256, gray.shape).astype(np.uint16)
    paths = {
        "L": save(Image.fromarray(gray), tmp_path / "g.jpg", quality=100),
        "I;16": save(Image.fromarray(deep), tmp_path / "g16.png"),
        "1": save(Image.fromarray(gray > 127), tmp_path / "bw.png"),
    }
    for mode, path in paths.items():
        assert Image.open(path).mode == mode
        decoded = hwc(decode_image(path))
        assert decoded.shape == (12, 10, 3)
        assert (decoded == decoded[..., :1]).all(), mode
    assert np.abs(hwc(decode_image(paths["L"]))[..., 0].astype(int) - gray).max() <= 2
    # 16 bits → the high byte, as TF's decode_png(dtype=uint8) (png_set_strip_16)
    assert np.array_equal(hwc(decode_image(paths["I;16"]))[..., 0], gray)
    assert set(np.unique(hwc(decode_image(paths["1"])))) <= {0, 255}


def test_cmyk_jpeg_converts_like_pillow(tmp_path: Path) -> None:
    path = save(Image.fromarray(RGB).convert("CMYK"), tmp_path / "c.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    expected = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(hwc(decode_image(path)), expected)


def test_palette_png_keeps_its_colours(tmp_path: Path) -> None:
    palette = Image.fromarray(RGB).convert("P")
    path = save(palette, tmp_path / "p.png", transparency=0)  # palette entry 0 transparent
    assert np.array_equal(hwc(decode_image(path)), np.asarray(palette.convert("RGB")))


def test_alpha_is_dropped_keeping_the_stored_colours(tmp_path: Path) -> None:
    alpha = np.zeros((12, 10), np.uint8)
    alpha[:6] = 255  # top half opaque, bottom half fully transparent
    rgba = save(Image.fromarray(np.dstack([RGB, alpha]), "RGBA"), tmp_path / "t.png")
    assert np.array_equal(hwc(decode_image(rgba)), RGB)
    la = save(Image.fromarray(np.dstack([RGB[..., 1], alpha]), "LA"), tmp_path / "la.png")
    assert np.array_equal(hwc(decode_image(la)), np.repeat(RGB[..., 1:2], 3, axis=2))


def test_png_named_jpeg_and_bytes_input(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(RGB).save(buffer, format="PNG")
    path = tmp_path / "n01440764_1.JPEG"
    path.write_bytes(buffer.getvalue())
    assert np.array_equal(hwc(decode_image(path)), RGB)
    assert np.array_equal(hwc(decode_image(buffer.getvalue())), RGB)


def test_exif_orientation_is_not_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "rotated.jpg"
    path.write_bytes(jpeg_bytes(RGB, quality=95, exif=exif.tobytes()))
    assert Image.open(path).getexif()[0x0112] == 6
    assert decode_image(path).shape == (3, 12, 10)  # as stored, like TF's decode_jpeg


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg_raises_naming_the_file(tmp_path: Path, progressive: bool) -> None:
    data = jpeg_bytes(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), progressive=progressive)
    path = tmp_path / "n01440764_2.JPEG"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match=r"n01440764_2\.JPEG.*re-download"):
        decode_image(path)
    with pytest.raises(ImageDecodeError, match=r"shard-0007\.tar:key"):
        decode_image(data[:-100], name="shard-0007.tar:key")


@pytest.mark.parametrize("kind", ["empty", "text", "truncated_png"])
def test_other_bad_files_raise_naming_the_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.jpg"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("<html>404 Not Found</html>")
    else:
        buffer = io.BytesIO()
        Image.fromarray(RGB).save(buffer, format="PNG")
        path.write_bytes(buffer.getvalue()[:-40])  # into the pixel data
    with pytest.raises(ImageDecodeError, match=rf"{kind}\.jpg"):
        decode_image(path)
    with pytest.raises(ValueError):  # ImageDecodeError is a ValueError
        decode_image(path.read_bytes())


def test_missing_file_is_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        decode_image(tmp_path / "absent.jpg")


def test_refuses_to_run_with_truncated_loading_enabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        decode_image(jpeg_bytes(RGB))
