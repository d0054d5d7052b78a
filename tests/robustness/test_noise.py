"""The four noise corruptions: pinned draws against the reference formulas, and the drawn noise
against its closed-form statistics.

The reference's draws (NumPy's global RNG, scikit-image's own generator for impulse noise) cannot
be replayed, so the exact comparison pins the random part through ``corrupt(..., noise=)`` etc.,
and the random path is checked by its distribution. The statistics use seeded generators, so
every bound is deterministic; bounds are 5 standard errors wide.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import photos
import pytest
import torch

from assembled_lightning.robustness.corruptions import corrupt, get_corruption
from assembled_lightning.robustness.corruptions.noise import POISSON_CPU_PIECES

GAUSSIAN = (0.08, 0.12, 0.18, 0.26, 0.38)
SHOT = (60, 25, 12, 5, 3)
IMPULSE = (0.03, 0.06, 0.09, 0.17, 0.27)
SPECKLE = (0.15, 0.2, 0.35, 0.45, 0.6)
NAMES = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")
SEVERITIES = (1, 2, 3, 4, 5)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def raw(name: str, images: torch.Tensor, severity: int, seed: int = 0) -> torch.Tensor:
    """The corruption before ``corrupt``'s final clip to [0, 1]: the noise itself."""
    return get_corruption(name).apply(images, severity, generator(seed))


def normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))


def assert_fraction(observed: float, expected: float, count: int, what: str) -> None:
    bound = 5 * math.sqrt(max(expected * (1 - expected), 1e-12) / count) + 1e-9
    assert abs(observed - expected) <= bound, (
        f"{what}: {observed:.5f} vs {expected:.5f} ± {bound:.5f}"
    )


# ---- pinned draws: exactly the reference formula --------------------------------------------


def rng_scale(z: np.ndarray, scale: float) -> np.ndarray:
    """What ``np.random.normal(size=..., scale=c)`` returns for standard draws z: 0 + c·z."""
    return 0.0 + scale * z


@pytest.mark.parametrize("severity", SEVERITIES)
def test_pinned_draws_give_the_reference_formulas(
    reference_photos: np.ndarray, severity: int
) -> None:
    rng = np.random.default_rng(severity)
    batch = photos.as_batch(reference_photos, torch.float64)
    x = batch.numpy()
    z = rng.standard_normal(x.shape)
    counts = rng.poisson(x * SHOT[severity - 1])
    flipped = rng.random(x.shape) <= IMPULSE[severity - 1]
    salted = rng.random(x.shape) <= 0.5
    impulse = x.copy()
    impulse[flipped & salted] = 1
    impulse[flipped & ~salted] = 0
    expected = {
        "gaussian_noise": np.clip(x + rng_scale(z, GAUSSIAN[severity - 1]), 0, 1),
        "speckle_noise": np.clip(x + x * rng_scale(z, SPECKLE[severity - 1]), 0, 1),
        "shot_noise": np.clip(counts / float(SHOT[severity - 1]), 0, 1),
        "impulse_noise": impulse,
    }
    pins = {
        "gaussian_noise": {"noise": torch.from_numpy(z)},
        "speckle_noise": {"noise": torch.from_numpy(z)},
        "shot_noise": {"counts": torch.from_numpy(counts)},
        "impulse_noise": {"flipped": torch.from_numpy(flipped), "salted": torch.from_numpy(salted)},
    }
    for name in NAMES:
        ours = corrupt(batch, name, severity, **pins[name]).numpy()
        worst = float(np.abs(ours - expected[name]).max())
        print(f"{name} s{severity} pinned float64: max |diff| {worst:.1e}")
        assert worst <= 1e-12
        as_uint8 = photos.as_reference_uint8(corrupt(batch.float(), name, severity, **pins[name]))
        photos.assert_uint8_close(as_uint8, np.uint8(expected[name].transpose(0, 2, 3, 1) * 255))


def test_pinned_inputs_must_have_the_images_shape() -> None:
    images = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="noise must have the images' shape"):
        corrupt(images, "gaussian_noise", 1, noise=torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="flipped must have"):
        corrupt(images, "impulse_noise", 1, flipped=torch.zeros(2, 1, 8, 8, dtype=torch.bool))


# ---- drawn noise: its distribution ----------------------------------------------------------


@pytest.mark.parametrize("severity", SEVERITIES)
def test_gaussian_noise_statistics(reference_photos: np.ndarray, severity: int) -> None:
    std = GAUSSIAN[severity - 1]
    batch = photos.as_batch(reference_photos, torch.float32)
    residual = (raw("gaussian_noise", batch, severity) - batch).double()
    count = residual.numel()
    assert abs(residual.mean().item()) <= 5 * std / math.sqrt(count)
    assert abs(residual.std().item() / std - 1) <= 5 / math.sqrt(2 * count) + 1e-3
    # after corrupt's clip: the clipped fractions of the closed form, per element
    out = corrupt(batch, "gaussian_noise", severity, generator=generator()).numpy()
    x = batch.double().numpy()
    assert_fraction((out == 0).mean(), normal_cdf(-x / std).mean(), count, "fraction at 0")
    assert_fraction((out == 1).mean(), 1 - normal_cdf((1 - x) / std).mean(), count, "at 1")


@pytest.mark.parametrize("severity", SEVERITIES)
def test_speckle_noise_statistics(reference_photos: np.ndarray, severity: int) -> None:
    std = SPECKLE[severity - 1]
    batch = photos.as_batch(reference_photos, torch.float64)
    lit = batch > 0
    relative = ((raw("speckle_noise", batch, severity) - batch)[lit] / batch[lit]).double()
    count = relative.numel()
    assert abs(relative.mean().item()) <= 5 * std / math.sqrt(count)
    assert abs(relative.std().item() / std - 1) <= 5 / math.sqrt(2 * count) + 1e-3
    out = corrupt(batch, "speckle_noise", severity, generator=generator()).numpy()
    x = batch.numpy()
    assert np.array_equal(out[x == 0], x[x == 0]), "black stays black: the noise is x·z"
    with np.errstate(divide="ignore"):
        above = 1 - normal_cdf(np.where(x > 0, (1 / x - 1) / std, np.inf))
    assert_fraction((out == 1).mean(), above.mean(), out.size, "fraction clipped at 1")


@pytest.mark.parametrize("severity", SEVERITIES)
def test_shot_noise_mean_variance_and_support(reference_photos: np.ndarray, severity: int) -> None:
    """E[y] = x and Var[y] = x/c per grey level (unclipped draws), y on multiples of 1/c."""
    photons = SHOT[severity - 1]
    levels = torch.tensor([0, 3, 20, 64, 128, 200, 255], dtype=torch.float64) / 255
    flat = levels.repeat_interleave(3 * 48 * 48).view(len(levels), 3, 48, 48)
    y = raw("shot_noise", flat, severity)
    for level, draws in zip(levels.tolist(), y.flatten(1), strict=True):
        count = draws.numel()
        rate = level * photons
        if rate == 0:
            assert (draws == 0).all()
            continue
        variance = level / photons
        assert abs(draws.mean().item() - level) <= 5 * math.sqrt(variance / count)
        spread = 5 * math.sqrt((2 + 1 / rate) / count)  # sd of a sample variance, Poisson
        assert abs(draws.var().item() / variance - 1) <= spread, (level, draws.var().item())
    photo_draws = raw("shot_noise", photos.as_batch(reference_photos), severity) * photons
    torch.testing.assert_close(photo_draws, photo_draws.round(), rtol=0, atol=1e-9)


def test_shot_noise_draws_do_not_depend_on_the_thread_count_and_no_piece_repeats() -> None:
    """The CPU draws come in pieces from generators seeded from the caller's: the same draws on
    1 and 2 threads, and a different seed per piece (a shared one would repeat the draws)."""
    images = torch.full((8, 3, 32, 32), 0.5)
    threads = torch.get_num_threads()
    draws = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            draws.append(corrupt(images, "shot_noise", 1, generator=generator(3)))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(draws[0], draws[1])
    pieces = draws[0].flatten().chunk(POISSON_CPU_PIECES)
    assert len(pieces) == POISSON_CPU_PIECES
    assert not any(torch.equal(a, b) for a, b in itertools.combinations(pieces, 2))


@pytest.mark.parametrize("severity", SEVERITIES)
def test_impulse_noise_replaces_each_element_independently(severity: int) -> None:
    """On mid-grey images: 0 and 1 each at p/2 per channel, the rest bit-identical, and the
    three channels of a pixel hit independently (scikit-image draws per element)."""
    amount = IMPULSE[severity - 1]
    grey = torch.full((4, 3, 64, 64), 0.5)
    out = corrupt(grey, "impulse_noise", severity, generator=generator())
    per_channel = out.transpose(0, 1).flatten(1)
    for channel in per_channel:
        count = channel.numel()
        assert_fraction((channel == 1).double().mean().item(), amount / 2, count, "salt")
        assert_fraction((channel == 0).double().mean().item(), amount / 2, count, "pepper")
    assert ((out == 0) | (out == 1) | (out == 0.5)).all()
    untouched_pixels = (out == 0.5).all(1).double().mean().item()
    assert_fraction(untouched_pixels, (1 - amount) ** 3, out[:, 0].numel(), "pixels untouched")


def test_impulse_noise_leaves_other_elements_bit_identical(reference_photos: np.ndarray) -> None:
    batch = photos.as_batch(reference_photos, torch.float32)
    out = corrupt(batch, "impulse_noise", 5, generator=generator())
    changed = out != batch
    assert ((out[changed] == 0) | (out[changed] == 1)).all()
    # a flip changes an element unless it draws the value it already has (0 or 1)
    same_draw = 0.5 * ((batch == 0) | (batch == 1)).double().mean().item()
    expected = IMPULSE[4] * (1 - same_draw)
    assert_fraction(changed.double().mean().item(), expected, batch.numel(), "changed")


# ---- common behaviour -----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_seeded_reproducible_independent_per_image_and_input_untouched(name: str) -> None:
    images = torch.full((3, 3, 16, 16), 0.4)
    before = images.clone()
    first = corrupt(images, name, 3, generator=generator(7))
    torch.testing.assert_close(first, corrupt(images, name, 3, generator=generator(7)))
    assert not torch.equal(first, corrupt(images, name, 3, generator=generator(8)))
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
    torch.testing.assert_close(images, before, rtol=0, atol=0)
    assert first.dtype == images.dtype and first.shape == images.shape
    assert first.min() >= 0 and first.max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_pinned_equals_cpu_and_drawn_runs_on_device() -> None:
    images = torch.rand(2, 3, 32, 32, generator=generator(), dtype=torch.float64)
    z = torch.randn(images.shape, generator=generator(1), dtype=torch.float64)
    for name in ("gaussian_noise", "speckle_noise"):
        on_gpu = corrupt(images.cuda(), name, 3, noise=z.cuda())
        torch.testing.assert_close(on_gpu.cpu(), corrupt(images, name, 3, noise=z))
    cuda_generator = torch.Generator(device="cuda").manual_seed(0)
    for name in NAMES:
        out = corrupt(images.cuda(), name, 5, generator=cuda_generator)
        assert out.is_cuda and out.shape == images.shape and not torch.equal(out[0], out[1])
