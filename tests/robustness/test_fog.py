"""fog against a NumPy transcription of the reference: the formula pixel-wise with a pinned
plasma map, the batched diamond-square generator exactly (same uniforms) and statistically."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import photos
import pytest
import torch
from scipy import stats

from assembled_lightning.robustness.corruptions import corrupt
from assembled_lightning.robustness.corruptions.fog import plasma_fractal

FOG = ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))

Uniform = Callable[[float, float, tuple[int, ...]], np.ndarray]


def numpy_plasma(uniform: Uniform, mapsize: int, wibbledecay: float) -> np.ndarray:
    """The reference's diamond-square map, transcribed in NumPy (toroidal neighbours)."""
    height_map = np.zeros((mapsize, mapsize))
    step, wibble = mapsize, 100.0
    while step >= 2:
        half = step // 2
        corners = height_map[::step, ::step]
        total = corners + np.roll(corners, -1, axis=0)
        total = total + np.roll(total, -1, axis=1)
        shape = total.shape
        height_map[half::step, half::step] = total / 4 + wibble * uniform(-wibble, wibble, shape)
        centres, corners = height_map[half::step, half::step], height_map[::step, ::step]
        across = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        height_map[::step, half::step] = across / 4 + wibble * uniform(-wibble, wibble, shape)
        down = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        height_map[half::step, ::step] = down / 4 + wibble * uniform(-wibble, wibble, shape)
        step //= 2
        wibble /= wibbledecay
    height_map -= height_map.min()
    return height_map / height_map.max()


def numpy_fog(image: np.ndarray, strength: float, plasma: np.ndarray) -> np.ndarray:
    """The reference's fog on one H×W×3 uint8 image with a given H×W map, in 0–255."""
    x = image / 255.0
    peak = x.max()
    x = x + strength * plasma[..., np.newaxis]
    return np.clip(x * peak / (peak + strength), 0, 1) * 255


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_fog_with_a_pinned_map_matches_the_formula(
    reference_photos: np.ndarray, severity: int
) -> None:
    strength, decay = FOG[severity - 1]
    rng = np.random.default_rng(severity)
    maps = np.stack([numpy_plasma(rng.uniform, 256, decay)[:224, :224] for _ in range(4)])
    reference = np.stack(
        [numpy_fog(im, strength, m) for im, m in zip(reference_photos, maps, strict=True)]
    )
    pinned = torch.from_numpy(maps)
    ours64 = corrupt(photos.as_batch(reference_photos), "fog", severity, plasma=pinned)
    float_diff = np.abs(ours64.permute(0, 2, 3, 1).numpy() * 255 - reference).max()
    ours32 = corrupt(
        photos.as_batch(reference_photos, torch.float32), "fog", severity, plasma=pinned
    )
    ours_u8 = photos.as_reference_uint8(ours32)
    level_diff = np.abs(ours_u8.astype(int) - np.uint8(reference).astype(int))
    print(
        f"fog s{severity}: float64 max |diff| {float_diff:.2e} levels; float32 uint8 max "
        f"{level_diff.max()}, within 1 level {(level_diff <= 1).mean():.5f}"
    )
    assert float_diff <= 1e-6
    photos.assert_uint8_close(ours_u8, np.uint8(reference))


def test_one_map_for_the_whole_batch_is_broadcast(reference_photos: np.ndarray) -> None:
    plasma = torch.rand(224, 224, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    images = photos.as_batch(reference_photos)
    together = corrupt(images, "fog", 3, plasma=plasma)
    alone = corrupt(images[2:3], "fog", 3, plasma=plasma)
    torch.testing.assert_close(together[2:3], alone, rtol=0, atol=0)


def torch_uniforms(source: torch.Generator) -> Uniform:
    """NumPy-style ``uniform(low, high, shape)`` drawing from torch's stream as the batched
    generator does (one float64 ``torch.rand`` per octave step, batch of one)."""

    def uniform(low: float, high: float, shape: tuple[int, ...]) -> np.ndarray:
        draw = torch.rand((1, *shape), generator=source, dtype=torch.float64)[0].numpy()
        return low + (high - low) * draw

    return uniform


def test_the_generator_runs_the_reference_algorithm_exactly() -> None:
    """Fed the same uniforms (torch's stream, in the order the batched version draws them), the
    NumPy transcription gives the same map: same octaves, neighbours, wibble and scaling."""
    for mapsize, decay in ((256, 1.7), (8, 2.0), (2, 1.4)):
        uniform = torch_uniforms(torch.Generator().manual_seed(mapsize))
        expected = numpy_plasma(uniform, mapsize, decay)
        ours = plasma_fractal(1, mapsize, decay, generator=torch.Generator().manual_seed(mapsize))
        np.testing.assert_allclose(ours[0].numpy(), expected, rtol=0, atol=1e-12)


def map_statistics(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per map: mean, std and the share of spectral power in 6 radial frequency bands."""
    spectra = np.abs(np.fft.rfft2(maps - maps.mean(axis=(1, 2), keepdims=True))) ** 2
    fy = np.fft.fftfreq(maps.shape[1])[:, None]
    fx = np.fft.rfftfreq(maps.shape[2])[None]
    radius = np.hypot(fx, fy)
    edges = (0.0, 0.01, 0.02, 0.04, 0.08, 0.16, 0.71)
    bands = np.stack(
        [spectra[:, (radius >= lo) & (radius < hi)].sum(1) for lo, hi in itertools.pairwise(edges)],
        axis=1,
    )
    return maps.mean(axis=(1, 2)), maps.std(axis=(1, 2)), bands / bands.sum(1, keepdims=True)


def per_map_histograms(maps: np.ndarray) -> np.ndarray:
    """Each map's share of pixels in 10 equal bins of [0, 1] (maps are strongly correlated
    inside, so the spread is taken across maps, not pixels)."""
    bins = np.minimum((maps * 10).astype(int), 9).reshape(len(maps), -1)
    return np.stack([np.bincount(row, minlength=10) for row in bins]) / bins.shape[1]


@pytest.mark.parametrize("decay", [2.0, 1.4])
def test_generated_maps_are_distributed_like_the_reference(decay: float) -> None:
    """Over 120 draws each: min 0 / max 1 per map, per-map mean and std (KS), pixel
    histogram and radial power spectrum within a few standard errors of the NumPy maps."""
    count = 120
    rng = np.random.default_rng(7)
    reference = np.stack([numpy_plasma(rng.uniform, 256, decay) for _ in range(count)])
    full = plasma_fractal(count, 256, decay, generator=torch.Generator().manual_seed(7)).numpy()
    assert (full.min(axis=(1, 2)) == 0).all() and (full.max(axis=(1, 2)) == 1).all()
    ours, reference = full[:, :224, :224], reference[:, :224, :224]
    (mean_a, std_a, band_a), (mean_b, std_b, band_b) = (
        map_statistics(reference),
        map_statistics(ours),
    )
    p_mean, p_std = stats.ks_2samp(mean_a, mean_b).pvalue, stats.ks_2samp(std_a, std_b).pvalue
    hist_a, hist_b = per_map_histograms(reference), per_map_histograms(ours)
    hist_se = np.hypot(hist_a.std(0), hist_b.std(0)) / np.sqrt(count)
    hist_z = np.abs(hist_a.mean(0) - hist_b.mean(0)) / hist_se
    band_se = np.hypot(band_a.std(0), band_b.std(0)) / np.sqrt(count)
    band_z = np.abs(band_a.mean(0) - band_b.mean(0)) / band_se
    print(
        f"decay {decay}: KS p mean {p_mean:.3f} std {p_std:.3f}; histogram max |diff| "
        f"{np.abs(hist_a.mean(0) - hist_b.mean(0)).max():.4f} (|z| max {hist_z.max():.2f}); "
        f"spectrum bands |z| max {band_z.max():.2f}"
    )
    assert p_mean > 1e-3 and p_std > 1e-3
    assert hist_z.max() < 4.5
    assert band_z.max() < 4.5


def test_fog_draws_per_image_reproducibly_and_keeps_the_input() -> None:
    images = torch.rand(3, 3, 40, 60, generator=torch.Generator().manual_seed(1))
    before = images.clone()
    first = corrupt(images, "fog", 5, generator=torch.Generator().manual_seed(3))
    again = corrupt(images, "fog", 5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.testing.assert_close(images, before, rtol=0, atol=0)
    assert first.min() >= 0 and first.max() <= 1
    same = corrupt(images[:1].expand(2, -1, -1, -1), "fog", 5, generator=torch.Generator())
    assert not torch.equal(same[0], same[1])


def test_other_sizes_crop_the_next_power_of_two_map() -> None:
    """A 100×300 image draws 512×512 maps; recovering the map from the output gives values in
    [0, 1] that reach 0 only where the uncropped map's minimum falls inside the crop."""
    images = torch.zeros(2, 3, 100, 300, dtype=torch.float64)
    images[:, :, 0, 0] = 1.0  # peak 1: y = (x + s·map)/(1 + s)
    strength = FOG[0][0]
    out = corrupt(images, "fog", 1, generator=torch.Generator().manual_seed(0))
    recovered = (out[:, 0] * (1 + strength) - images[:, 0]) / strength
    assert out.shape == images.shape
    assert recovered.min() >= -1e-12 and recovered.max() <= 1 + 1e-12
    torch.testing.assert_close(out[:, 0], out[:, 2], rtol=0, atol=0)


def test_bad_plasma_inputs_are_refused() -> None:
    images = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="H×W"):
        corrupt(images, "fog", 1, plasma=torch.rand(8, 8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corrupt(images, "fog", 1, plasma=torch.full((16, 16), 2.0))
