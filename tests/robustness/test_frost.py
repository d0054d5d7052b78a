"""frost: the blend against the reference formula, the reference's file-and-window draw on a
folder of stand-in frost files, and the procedural texture's properties and statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import photos
import pytest
import torch
from PIL import Image
from scipy import stats

from assembled_lightning.robustness.corruptions import corrupt
from assembled_lightning.robustness.corruptions.frost import photo_frost, procedural_frost

FROST = ((1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))
FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_frost_with_a_pinned_texture_matches_the_formula(
    reference_photos: np.ndarray, severity: int
) -> None:
    """The reference works on uint8 arrays: clip(a·x + b·frost, 0, 255)."""
    a, b = FROST[severity - 1]
    rng = np.random.default_rng(severity)
    textures = rng.integers(0, 256, reference_photos.shape, dtype=np.uint8)
    reference = np.clip(a * reference_photos + b * textures, 0, 255)
    pinned = torch.from_numpy(textures).permute(0, 3, 1, 2).double() / 255
    for dtype in (torch.float64, torch.float32):
        out = corrupt(photos.as_batch(reference_photos, dtype), "frost", severity, texture=pinned)
        float_diff = np.abs(out.permute(0, 2, 3, 1).double().numpy() * 255 - reference).max()
        ours = photos.as_reference_uint8(out)
        diff = np.abs(ours.astype(int) - np.uint8(reference).astype(int))
        print(
            f"frost s{severity} {dtype}: float max |diff| {float_diff:.1e} levels; uint8 max "
            f"{diff.max()}, within 1 {(diff <= 1).mean():.5f}"
        )
        photos.assert_uint8_close(ours, np.uint8(reference))
        assert float_diff <= (1e-9 if dtype == torch.float64 else 1e-4)


def write_frost_folder(folder: Path, sizes: list[tuple[int, int]], seed: int = 0) -> None:
    """Random stand-ins with the reference's names: RGBA PNGs (alpha must be dropped) and
    JPEGs, plus a frost6.jpg that must never be drawn."""
    rng = np.random.default_rng(seed)
    for name, (height, width) in zip((*FILES, "frost6.jpg")[: len(sizes)], sizes, strict=True):
        if name.endswith(".png"):
            pixels = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
            Image.fromarray(pixels, "RGBA").save(folder / name)
        else:
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name, quality=90)


def decoded(folder: Path, name: str) -> np.ndarray:
    with Image.open(folder / name) as image:
        return np.asarray(image.convert("RGB"))


def test_folder_draws_files_and_windows_uniformly_like_the_reference(tmp_path: Path) -> None:
    """Every 8×8 window drawn is located by exact search over all files (frost6 included):
    only frost1–5, each equally often; offsets uniform on 0 … size−8−1 (the reference's
    exclusive randint bound), the last position never used."""
    sizes = [(13, 15), (11, 14), (10, 12), (12, 10), (14, 11), (16, 16)]
    write_frost_folder(tmp_path, sizes)
    side, draws = 8, 3000
    windows = photo_frost(
        torch.zeros(draws, 3, side, side, dtype=torch.float64),
        tmp_path,
        torch.Generator().manual_seed(0),
    )
    drawn = np.rint(windows.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    candidates, labels = [], []
    for index, name in enumerate((*FILES, "frost6.jpg")):
        array = decoded(tmp_path, name)
        for top in range(array.shape[0] - side + 1):
            for left in range(array.shape[1] - side + 1):
                candidates.append(array[top : top + side, left : left + side])
                labels.append((index, top, left))
    matches = (drawn[:, None] == np.stack(candidates)[None]).all(axis=(2, 3, 4))
    assert (matches.sum(axis=1) == 1).all(), "every window is exactly one window of one file"
    found = np.array(labels)[matches.argmax(axis=1)]
    counts = np.bincount(found[:, 0], minlength=6)
    print(f"files drawn: {counts.tolist()}")
    assert counts[5] == 0
    assert stats.chisquare(counts[:5]).pvalue > 1e-3
    for index, (height, width) in enumerate(sizes[:5]):
        mine = found[found[:, 0] == index]
        for column, limit in ((1, height - side), (2, width - side)):
            offset_counts = np.bincount(mine[:, column], minlength=limit + 1)
            assert offset_counts[limit] == 0, "the last window position is never drawn"
            if limit > 1:
                assert stats.chisquare(offset_counts[:limit]).pvalue > 1e-3


def test_folder_frost_blends_the_drawn_window(tmp_path: Path) -> None:
    write_frost_folder(tmp_path, [(40, 50)] * 5)
    images = torch.rand(
        4, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    windows = photo_frost(images, tmp_path, torch.Generator().manual_seed(2))
    out = corrupt(
        images, "frost", 4, frost_textures=tmp_path, generator=torch.Generator().manual_seed(2)
    )
    torch.testing.assert_close(out, (0.65 * images + 0.7 * windows).clamp(0, 1))


def test_folder_problems_are_explained(tmp_path: Path) -> None:
    images = torch.rand(1, 3, 16, 16)
    with pytest.raises(FileNotFoundError, match=r"frost1\.png, frost2\.png"):
        corrupt(images, "frost", 1, frost_textures=tmp_path / "absent")
    write_frost_folder(tmp_path, [(20, 20)] * 5)
    (tmp_path / "frost5.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks frost5\.jpg"):
        corrupt(images, "frost", 1, frost_textures=tmp_path)
    (tmp_path / "frost5.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read"):
        corrupt(images, "frost", 1, frost_textures=tmp_path)
    write_frost_folder(tmp_path, [(20, 20), (20, 20), (12, 30), (20, 20), (20, 20)])
    with pytest.raises(ValueError, match=r"frost3\.png are smaller"):
        corrupt(images, "frost", 1, frost_textures=tmp_path)


def test_procedural_texture_is_in_range_reproducible_and_per_image() -> None:
    first = procedural_frost(3, 48, 80, generator=torch.Generator().manual_seed(4))
    again = procedural_frost(3, 48, 80, generator=torch.Generator().manual_seed(4))
    assert first.shape == (3, 3, 48, 80) and first.dtype == torch.float32
    assert first.min() >= 0 and first.max() <= 1
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first[0], first[1])
    wide = procedural_frost(1, 7, 300, dtype=torch.float64)
    assert wide.shape == (1, 3, 7, 300) and wide.dtype == torch.float64


# Measured on the reference's frost1–5 (hendrycks/robustness ImageNet-C/create_c, read with
# cv2.imread and flipped to RGB), over 200 random 224×224 windows, 40 per file, in 0–255:
REFERENCE_MEAN = (143.6, 164.5, 176.4)
REFERENCE_STD = (56.2, 43.2, 42.1)
REFERENCE_GREY_QUANTILES = (56.0, 101.0, 126.7, 163.3, 202.3, 219.3, 235.7)  # 1 10 25 50 75 90 99 %


def test_procedural_texture_statistics_resemble_the_reference_photographs() -> None:
    texture = procedural_frost(24, 224, 224, generator=torch.Generator().manual_seed(0))
    values = texture.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy() * 255
    mean, std = values.mean(0), values.std(0)
    quantiles = np.quantile(values.mean(1), (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99))
    print(
        f"procedural frost mean {mean.round(1)}, std {std.round(1)}, "
        f"grey quantiles {quantiles.round(1)}"
    )
    assert np.abs(mean - REFERENCE_MEAN).max() < 12
    assert np.abs(std - REFERENCE_STD).max() < 12
    assert np.abs(quantiles - REFERENCE_GREY_QUANTILES).max() < 20
    assert mean[0] < mean[1] < mean[2], "a cold tint: blue > green > red, as in the photographs"


def test_frost_default_is_reproducible_and_keeps_the_input() -> None:
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    before = images.clone()
    first = corrupt(images, "frost", 3, generator=torch.Generator().manual_seed(9))
    again = corrupt(images, "frost", 3, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.testing.assert_close(images, before, rtol=0, atol=0)
    assert first.min() >= 0 and first.max() <= 1


def test_a_badly_shaped_texture_is_refused() -> None:
    with pytest.raises(ValueError, match="3×H×W"):
        corrupt(torch.rand(2, 3, 16, 16), "frost", 1, texture=torch.rand(3, 8, 8))
