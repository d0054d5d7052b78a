"""Snow against a NumPy transcription of ``make_imagenet_c.py``'s ``snow`` with the same pinned
noise layer and angle (ImageMagick's blur transcribed independently in test_filters), and its
random path by statistics."""

from __future__ import annotations

import numpy as np
import photos
import pytest
import torch
from scipy import stats
from test_blur import report
from test_filters import numpy_motion_blur, reference_clipped_zoom

from assembled_lightning.robustness.corruptions import corrupt
from assembled_lightning.robustness.corruptions.snow import SNOW

SEVERITIES = (1, 2, 3, 4, 5)


def reference_snow(photo: np.ndarray, severity: int, field: np.ndarray, angle: float) -> np.ndarray:
    """The reference's snow on one H×W×3 uint8 photo with its N(loc, scale) ``field`` and motion
    ``angle`` given; returns the uint8 output (the reference's truncation)."""
    _, _, zoom, threshold, radius, sigma, blend = SNOW[severity - 1]
    x = np.array(photo, dtype=np.float32) / 255.0
    layer = reference_clipped_zoom(field[..., np.newaxis], zoom)
    layer[layer < threshold] = 0
    png = (np.clip(layer.squeeze(), 0, 1) * 255).astype(np.uint8)  # saved as an 8-bit PNG
    blurred = numpy_motion_blur(png[np.newaxis].astype(np.float64), radius, sigma, angle)[0]
    layer = np.uint8(np.clip(np.round(blurred), 0, 255))[..., np.newaxis] / 255.0  # PNG back
    grey = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]  # cv2 RGB2GRAY, float32
    x = blend * x + (1 - blend) * np.maximum(x, grey[..., np.newaxis] * 1.5 + 0.5)
    return np.uint8(np.clip(x + layer + np.rot90(layer, k=2), 0, 1) * 255)


def test_snow_matches_the_reference(reference_photos: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    angles = rng.uniform(-135, -45, size=4)
    images = photos.as_batch(reference_photos, torch.float32)  # the reference works in float32
    for severity in SEVERITIES:
        loc, scale = SNOW[severity - 1][:2]
        fields = rng.normal(loc, scale, size=(4, 224, 224))
        reference = np.stack(
            [
                reference_snow(photo, severity, field, angle)
                for photo, field, angle in zip(reference_photos, fields, angles, strict=True)
            ]
        )
        out = corrupt(images, "snow", severity, layer=fields, angle=torch.from_numpy(angles))
        report(f"snow s{severity}", photos.as_reference_uint8(out), reference, max_diff=2)


def test_snow_layer_may_be_shared_by_the_batch() -> None:
    images = torch.rand(2, 3, 224, 224)
    field = torch.randn(224, 224, dtype=torch.float64) * 0.3 + 0.55
    shared = corrupt(images, "snow", 3, layer=field, angle=-90.0)
    single = corrupt(images[1:], "snow", 3, layer=field[None], angle=torch.tensor([-90.0]))
    torch.testing.assert_close(shared[1:], single)
    with pytest.raises(ValueError, match="layer="):
        corrupt(images, "snow", 3, layer=field[:100])
    with pytest.raises(ValueError, match="angle="):
        corrupt(images, "snow", 3, layer=field, angle=torch.zeros(3))


def snow_on_black(layers: list[np.ndarray], angles: np.ndarray, severity: int) -> np.ndarray:
    black = np.zeros((224, 224, 3), dtype=np.uint8)
    return np.stack(
        [reference_snow(black, severity, f, a) for f, a in zip(layers, angles, strict=True)]
    )


@pytest.mark.parametrize("severity", [1, 3])
def test_snow_random_layer_and_angle_have_the_references_statistics(severity: int) -> None:
    """On a black image the output is a constant plus the flakes: the random path's flakes must
    look like the reference's flakes from NumPy's N(loc, scale) and U(−135°, −45°) draws."""
    count = 6
    loc, scale = SNOW[severity - 1][:2]
    rng = np.random.default_rng(severity)
    fields = [rng.normal(loc, scale, size=(224, 224)) for _ in range(count)]
    reference = snow_on_black(fields, rng.uniform(-135, -45, size=count), severity)
    black = torch.zeros(count, 3, 224, 224)
    ours = corrupt(black, "snow", severity, generator=torch.Generator().manual_seed(severity))
    ours_u8 = photos.as_reference_uint8(ours)
    base = int(reference.min())  # (1 − blend)·0.5 of the washed-out black
    assert int(ours_u8.min()) == base
    # fraction of snowy pixels and their mean brightness: per-image values, two-sample tests
    ours_snowy = (ours_u8[..., 0] > base).reshape(count, -1).mean(1)
    ref_snowy = (reference[..., 0] > base).reshape(count, -1).mean(1)
    ours_level = ours_u8[..., 0].reshape(count, -1).mean(1)
    ref_level = reference[..., 0].reshape(count, -1).mean(1)
    print(f"snow s{severity}: snowy {ours_snowy.mean():.4f} vs {ref_snowy.mean():.4f}")
    print(f"snow s{severity}: mean level {ours_level.mean():.3f} vs {ref_level.mean():.3f}")
    assert stats.ttest_ind(ours_snowy, ref_snowy).pvalue > 0.001
    assert stats.ttest_ind(ours_level, ref_level).pvalue > 0.001
    assert abs(ours_snowy.mean() / ref_snowy.mean() - 1) < 0.1


def test_snow_random_angles_follow_the_streaks() -> None:
    """The streaks run along the angle: with angles in (−135°, −45°) they are steep, so the
    flakes vary less vertically than horizontally; and the random path is the pinned one fed
    with N(loc, scale) and U(−135°, −45°) draws from the same generator."""
    images = torch.zeros(4, 3, 224, 224)
    out = corrupt(images, "snow", 5, generator=torch.Generator().manual_seed(0))
    flakes = out[:, 0] - out[:, 0].min()
    dy = (flakes[:, 1:, :] - flakes[:, :-1, :]).abs().mean()
    dx = (flakes[:, :, 1:] - flakes[:, :, :-1]).abs().mean()
    assert dy < dx  # smoother vertically: the streaks run within 45° of vertical
    seeded = corrupt(images[:1], "snow", 5, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    field = 0.55 + 0.3 * torch.randn(1, 1, 224, 224, generator=generator)
    angle = -135 + 90 * torch.rand(1, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(
        seeded, corrupt(images[:1], "snow", 5, layer=field[:, 0], angle=angle)
    )


def test_snow_is_reproducible_per_image_and_leaves_the_input() -> None:
    image = torch.rand(1, 3, 224, 224, dtype=torch.float64)
    images = image.expand(2, -1, -1, -1).clone()
    before = images.clone()
    first = corrupt(images, "snow", 2, generator=torch.Generator().manual_seed(1))
    again = corrupt(images, "snow", 2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.testing.assert_close(images, before, rtol=0, atol=0)
    assert not torch.equal(first[0], first[1])
    assert first.dtype == torch.float64 and first.min() >= 0 and first.max() <= 1
