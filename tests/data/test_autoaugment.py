"""The original's AutoAugment (master:preprocessing/autoaugment.py): policy tables transcribed
from its source, level rules, and every op against a hand computation of its formula (numpy,
float32, written here from the original's text — not from our helpers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from assembled_lightning.data import autoaugment as aa

F = np.float32

# The original's imagenet_policies() and good_policies(), one sub-policy a line.
ORIGINAL_IMAGENET = """
Posterize 0.4 8 | Rotate 0.6 9
Solarize 0.6 5 | AutoContrast 0.6 5
Equalize 0.8 8 | Equalize 0.6 3
Posterize 0.6 7 | Posterize 0.6 6
Equalize 0.4 7 | Solarize 0.2 4
Equalize 0.4 4 | Rotate 0.8 8
Solarize 0.6 3 | Equalize 0.6 7
Posterize 0.8 5 | Equalize 1.0 2
Rotate 0.2 3 | Solarize 0.6 8
Equalize 0.6 8 | Posterize 0.4 6
Rotate 0.8 8 | Color 0.4 0
Rotate 0.4 9 | Equalize 0.6 2
Equalize 0.0 7 | Equalize 0.8 8
Invert 0.6 4 | Equalize 1.0 8
Color 0.6 4 | Contrast 1.0 8
Rotate 0.8 8 | Color 1.0 2
Color 0.8 8 | Solarize 0.8 7
Sharpness 0.4 7 | Invert 0.6 8
ShearX 0.6 5 | Equalize 1.0 9
Color 0.4 0 | Equalize 0.6 3
Equalize 0.4 7 | Solarize 0.2 4
Solarize 0.6 5 | AutoContrast 0.6 5
Invert 0.6 4 | Equalize 1.0 8
Color 0.6 4 | Contrast 1.0 8
Equalize 0.8 8 | Equalize 0.6 3
"""

ORIGINAL_GOOD = """
Invert 0.1 7 | Contrast 0.2 6
Rotate 0.7 2 | TranslateX 0.3 9
Sharpness 0.8 1 | Sharpness 0.9 3
ShearY 0.5 8 | TranslateY 0.7 9
AutoContrast 0.5 8 | Equalize 0.9 2
Solarize 0.4 5 | AutoContrast 0.9 3
TranslateY 0.9 9 | TranslateY 0.7 9
AutoContrast 0.9 2 | Solarize 0.8 3
Equalize 0.8 8 | Invert 0.1 3
TranslateY 0.7 9 | AutoContrast 0.9 1
Solarize 0.4 5 | AutoContrast 0.0 2
TranslateY 0.7 9 | TranslateY 0.7 9
AutoContrast 0.9 0 | Solarize 0.4 3
Equalize 0.7 5 | Invert 0.1 3
TranslateY 0.7 9 | TranslateY 0.7 9
Solarize 0.4 5 | AutoContrast 0.9 1
TranslateY 0.8 9 | TranslateY 0.9 9
AutoContrast 0.8 0 | TranslateY 0.7 9
TranslateY 0.2 7 | Color 0.9 6
Equalize 0.7 6 | Color 0.4 9
ShearY 0.2 7 | Posterize 0.3 7
Color 0.4 3 | Brightness 0.6 7
Sharpness 0.3 9 | Brightness 0.7 9
Equalize 0.6 5 | Equalize 0.5 1
Contrast 0.6 7 | Sharpness 0.6 5
Brightness 0.3 7 | AutoContrast 0.5 8
AutoContrast 0.9 4 | AutoContrast 0.5 6
Solarize 0.3 5 | Equalize 0.6 5
TranslateY 0.2 4 | Sharpness 0.3 3
Brightness 0.0 8 | Color 0.8 8
Solarize 0.2 6 | Color 0.8 6
Solarize 0.2 6 | AutoContrast 0.8 1
Solarize 0.4 1 | Equalize 0.6 5
Brightness 0.0 0 | Solarize 0.5 2
AutoContrast 0.9 5 | Brightness 0.5 3
Contrast 0.7 5 | Brightness 0.0 2
Solarize 0.2 8 | Solarize 0.1 5
Contrast 0.5 1 | TranslateY 0.2 9
AutoContrast 0.6 5 | TranslateY 0.0 9
AutoContrast 0.9 4 | Equalize 0.8 4
Brightness 0.0 7 | Equalize 0.4 7
Solarize 0.2 5 | Equalize 0.7 5
Equalize 0.6 8 | Color 0.6 2
Color 0.3 7 | Color 0.2 4
AutoContrast 0.5 2 | Solarize 0.7 2
AutoContrast 0.2 0 | Equalize 0.1 0
ShearY 0.6 5 | Equalize 0.6 5
Brightness 0.9 3 | AutoContrast 0.4 1
Equalize 0.8 8 | Equalize 0.7 7
Equalize 0.7 7 | Solarize 0.5 0
Equalize 0.8 4 | TranslateY 0.8 9
TranslateY 0.8 9 | TranslateY 0.6 9
TranslateY 0.9 0 | TranslateY 0.5 9
AutoContrast 0.5 3 | Solarize 0.3 4
Solarize 0.5 3 | Equalize 0.4 4
Color 0.7 7 | TranslateX 0.5 8
Equalize 0.3 7 | AutoContrast 0.4 8
TranslateY 0.4 3 | Sharpness 0.2 6
Brightness 0.9 6 | Color 0.2 8
Solarize 0.5 2 | Invert 0.0 3
AutoContrast 0.1 5 | Brightness 0.0 0
Cutout 0.2 4 | Equalize 0.1 1
Equalize 0.7 7 | AutoContrast 0.6 4
Color 0.1 8 | ShearY 0.2 3
ShearY 0.4 2 | Rotate 0.7 0
ShearY 0.1 3 | AutoContrast 0.9 5
TranslateY 0.3 6 | Cutout 0.3 3
Equalize 0.5 0 | Solarize 0.6 6
AutoContrast 0.3 5 | Rotate 0.2 7
Equalize 0.8 2 | Invert 0.4 0
Equalize 0.9 5 | Color 0.7 0
Equalize 0.1 1 | ShearY 0.1 3
AutoContrast 0.7 3 | Equalize 0.7 0
Brightness 0.5 1 | Contrast 0.1 7
Contrast 0.1 4 | Solarize 0.6 5
Solarize 0.2 3 | ShearX 0.0 0
TranslateX 0.3 0 | TranslateX 0.6 0
Equalize 0.5 9 | TranslateY 0.6 7
ShearX 0.1 0 | Sharpness 0.5 1
Equalize 0.8 6 | Invert 0.3 6
AutoContrast 0.3 9 | Cutout 0.5 3
ShearX 0.4 4 | AutoContrast 0.9 2
ShearX 0.0 3 | Posterize 0.0 3
Solarize 0.4 3 | Color 0.2 4
Equalize 0.1 4 | Equalize 0.7 6
Equalize 0.3 8 | AutoContrast 0.4 3
Solarize 0.6 4 | AutoContrast 0.7 6
AutoContrast 0.2 9 | Brightness 0.4 8
Equalize 0.1 0 | Equalize 0.0 6
Equalize 0.8 4 | Equalize 0.0 4
Equalize 0.5 5 | AutoContrast 0.1 2
Solarize 0.5 5 | AutoContrast 0.9 5
AutoContrast 0.6 1 | AutoContrast 0.7 8
Equalize 0.2 0 | AutoContrast 0.1 2
Equalize 0.6 9 | Equalize 0.4 4
"""


def parse(table: str) -> list[list[tuple[str, float, int]]]:
    rows = []
    for line in table.strip().splitlines():
        ops = [op.split() for op in line.split("|")]
        rows.append([(name, float(p), int(level)) for name, p, level in ops])
    return rows


@pytest.mark.parametrize(
    ("policy", "table", "count"), [("imagenet", ORIGINAL_IMAGENET, 25), ("good", ORIGINAL_GOOD, 95)]
)
def test_policy_tables_are_the_originals(policy: str, table: str, count: int) -> None:
    expected = parse(table)
    ours = [list(sub) for sub in aa.POLICIES[policy]]
    assert len(ours) == len(expected) == count
    assert ours == expected
    assert all(0.0 <= p <= 1.0 and 0 <= level <= 10 for sub in ours for _, p, level in sub)
    assert {name for sub in ours for name, _, _ in sub} <= set(aa.OPS)


def test_good_policy_contents() -> None:
    names = [name for sub in aa.GOOD_POLICY for name, _, _ in sub]
    assert names.count("Cutout") == 3 and names.count("TranslateY") == 23
    assert "SolarizeAdd" not in names and "Cutout" not in str(aa.IMAGENET_POLICY)


def test_level_rules_of_the_original() -> None:
    rule = aa.level_to_magnitude
    assert rule("Posterize", 8) == 3 and rule("Posterize", 4) == 1 and rule("Posterize", 2) == 0
    assert rule("Solarize", 5) == 128 and rule("Solarize", 8) == 204 and rule("Solarize", 0) == 0
    assert rule("SolarizeAdd", 5) == 55
    for name in ("Color", "Contrast", "Brightness", "Sharpness"):
        assert rule(name, 0) == pytest.approx(0.1) and rule(name, 5) == 1.0
        assert rule(name, 9) == pytest.approx(1.72) and rule(name, 10) == pytest.approx(1.9)
    assert rule("Rotate", 9) == pytest.approx(27.0) and rule("ShearX", 5) == pytest.approx(0.15)
    assert rule("TranslateY", 9) == 225.0 and rule("TranslateX", 3) == 75.0
    assert rule("Cutout", 4) == 40 and rule("Cutout", 3) == 30
    assert rule("AutoContrast", 7) == rule("Equalize", 1) == rule("Invert", 4) == 0
    assert (aa.MAX_LEVEL, aa.REPLACE, aa.TRANSLATE_CONST, aa.CUTOUT_CONST) == (10, 128, 250, 100)
    assert {"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"} == aa.NEGATED
    with pytest.raises(ValueError, match="Mirror"):
        rule("Mirror", 3)


# --- hand computations of the original's formulas -------------------------------------------


@pytest.fixture
def image() -> np.ndarray:
    """A small uint8 [3, 7, 9] image that uses most of the 0..255 range."""
    return np.random.default_rng(7).integers(0, 256, (3, 7, 9), dtype=np.uint8)


def ours(op: str, image: np.ndarray, *args: float) -> np.ndarray:
    result = getattr(aa, op)(torch.from_numpy(image)[None], *args)
    assert result.dtype == torch.uint8 and result.shape == (1, *image.shape)
    return result[0].numpy()


def np_blend(image1: np.ndarray, image2: np.ndarray, factor: float) -> np.ndarray:
    """The original's blend, branch by branch."""
    if factor == 0.0:
        return np.broadcast_to(image1, image2.shape).astype(np.uint8)
    if factor == 1.0:
        return image2
    temp = image1.astype(F) + F(factor) * (image2.astype(F) - image1.astype(F))
    if 0.0 < factor < 1.0:
        return temp.astype(np.uint8)
    return np.clip(temp, 0.0, 255.0).astype(np.uint8)


def np_gray(image: np.ndarray) -> np.ndarray:
    """tf.image.rgb_to_grayscale on uint8: convert_image_dtype both ways around a dot product."""
    scaled = image.astype(F) * F(1.0 / 255)
    gray = scaled[0] * F(0.2989) + scaled[1] * F(0.5870) + scaled[2] * F(0.1140)
    return (gray * F(255.5)).astype(np.uint8)


def tf_round(value: float) -> int:
    return int(math.copysign(math.floor(abs(value) + 0.5), value))  # std::round


def np_transform(image: np.ndarray, a: tuple[float, ...], replace: int = 128) -> np.ndarray:
    """tf.contrib.image.transform (NEAREST) + the original's wrap/unwrap, pixel by pixel."""
    _, height, width = image.shape
    a0, a1, a2, b0, b1, b2 = (F(v) for v in a)
    out = np.full_like(image, replace)
    for y in range(height):
        for x in range(width):
            source_x = tf_round(float(a0 * F(x) + a1 * F(y) + a2))
            source_y = tf_round(float(b0 * F(x) + b1 * F(y) + b2))
            if 0 <= source_x < width and 0 <= source_y < height:
                out[:, y, x] = image[:, source_y, source_x]
    return out


def test_autocontrast(image: np.ndarray) -> None:
    image[1] = 77  # a constant channel is left as it is
    image[2] = np.clip(image[2], 40, 200)
    expected = image.copy()
    for c in (0, 2):
        low, high = F(image[c].min()), F(image[c].max())
        scale = F(255.0) / (high - low)
        offset = -low * scale
        expected[c] = np.clip(image[c].astype(F) * scale + offset, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(ours("autocontrast", image), expected)
    assert expected[2].min() == 0 and expected[2].max() == 255


def test_equalize_per_channel(image: np.ndarray) -> None:
    image[2] = np.where(image[2] > 128, 200, 30)  # two levels: step 0 → unchanged
    expected = image.copy()
    for c in range(3):
        histogram = np.bincount(image[c].ravel(), minlength=256)
        nonzero = histogram[histogram != 0]
        step = (nonzero.sum() - nonzero[-1]) // 255
        if step == 0:
            continue
        lut = (np.cumsum(histogram) + step // 2) // step
        lut = np.clip(np.concatenate([[0], lut[:-1]]), 0, 255)
        expected[c] = lut[image[c]]
    np.testing.assert_array_equal(ours("equalize", image), expected)
    big = np.random.default_rng(1).integers(0, 256, (3, 40, 40), dtype=np.uint8)
    histogram = np.bincount(big[0].ravel(), minlength=256)
    step = (1600 - histogram[big[0].max()]) // 255
    lut = np.clip(np.concatenate([[0], ((np.cumsum(histogram) + step // 2) // step)[:-1]]), 0, 255)
    np.testing.assert_array_equal(ours("equalize", big)[0], lut[big[0]])


def test_invert(image: np.ndarray) -> None:
    np.testing.assert_array_equal(ours("invert", image), 255 - image.astype(int))


@pytest.mark.parametrize(
    ("level", "mask"), [(8, 0b11100000), (6, 0b11000000), (4, 0x80), (0, 0x80)]
)
def test_posterize(image: np.ndarray, level: int, mask: int) -> None:
    bits = int((level / 10) * 4)  # level 0 → 0 bits: TF clamps the shift of 8 to 7
    np.testing.assert_array_equal(ours("posterize", image, bits), image & mask)


@pytest.mark.parametrize("level", [0, 3, 5, 8, 10])
def test_solarize(image: np.ndarray, level: int) -> None:
    threshold = int((level / 10) * 256)
    expected = np.where(image < threshold, image, 255 - image)
    np.testing.assert_array_equal(ours("solarize", image, threshold), expected)


def test_solarize_add(image: np.ndarray) -> None:
    addition = int((5 / 10) * 110)
    expected = np.where(image < 128, np.clip(image.astype(int) + addition, 0, 255), image)
    np.testing.assert_array_equal(ours("solarize_add", image, addition), expected)


ENHANCE_LEVELS = [0, 2, 5, 9, 10]


@pytest.mark.parametrize("level", ENHANCE_LEVELS)
def test_color(image: np.ndarray, level: int) -> None:
    factor = (level / 10) * 1.8 + 0.1
    degenerate = np.broadcast_to(np_gray(image), image.shape)
    np.testing.assert_array_equal(ours("color", image, factor), np_blend(degenerate, image, factor))


@pytest.mark.parametrize("level", ENHANCE_LEVELS)
def test_contrast_uses_the_histogram_sum_over_256(image: np.ndarray, level: int) -> None:
    factor = (level / 10) * 1.8 + 0.1
    big = np.random.default_rng(level).integers(0, 256, (3, 40, 50), dtype=np.uint8)
    for picture in (image, big):
        histogram = np.histogram(np_gray(picture), bins=256, range=(0, 255))[0]
        mean = F(histogram.astype(F).sum()) / F(256.0)  # the original's "mean": pixels / 256
        degenerate = np.full_like(picture, np.clip(mean, 0, 255).astype(np.uint8))
        expected = np_blend(degenerate, picture, factor)
        np.testing.assert_array_equal(ours("contrast", picture, factor), expected)
    assert int(F(2000) / F(256)) == 7  # 40×50 blends towards grey level 7, 224×224 towards 196


@pytest.mark.parametrize("level", ENHANCE_LEVELS)
def test_brightness(image: np.ndarray, level: int) -> None:
    factor = (level / 10) * 1.8 + 0.1
    expected = np_blend(np.zeros_like(image), image, factor)
    np.testing.assert_array_equal(ours("brightness", image, factor), expected)


@pytest.mark.parametrize("level", ENHANCE_LEVELS)
def test_sharpness(image: np.ndarray, level: int) -> None:
    factor = (level / 10) * 1.8 + 0.1
    kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=F) / F(13)
    smoothed = image.copy()  # the one-pixel border keeps the original
    for c in range(3):
        for y in range(1, image.shape[1] - 1):
            for x in range(1, image.shape[2] - 1):
                total = F(0)
                for dy in range(3):
                    for dx in range(3):
                        total = F(total + F(image[c, y - 1 + dy, x - 1 + dx]) * kernel[dy, dx])
                smoothed[c, y, x] = np.uint8(np.clip(total, 0, 255))
    expected = np_blend(smoothed, image, factor)
    np.testing.assert_array_equal(ours("sharpness", image, factor), expected)
    flat = np.full((3, 5, 5), 100, dtype=np.uint8)  # float32 sums of a flat area can truncate
    total = F(0)
    for weight in kernel.ravel():
        total = F(total + F(100) * weight)
    assert ours("sharpness", flat, 0.0)[0, 2, 2] == np.uint8(total)


@pytest.mark.parametrize("degrees", [27.0, -27.0, 9.0, 0.0])
def test_rotate(image: np.ndarray, degrees: float) -> None:
    _, height, width = image.shape
    radians = F(degrees) * F(math.pi / 180.0)
    cos, sin = np.cos(radians), np.sin(radians)
    w1, h1 = F(width - 1), F(height - 1)
    x_offset = (w1 - (cos * w1 - sin * h1)) / F(2.0)
    y_offset = (h1 - (sin * w1 + cos * h1)) / F(2.0)
    expected = np_transform(image, (cos, -sin, x_offset, sin, cos, y_offset))
    np.testing.assert_array_equal(ours("rotate", image, degrees), expected)
    if degrees == 0.0:
        np.testing.assert_array_equal(expected, image)


@pytest.mark.parametrize("level", [0.15, -0.15, 0.3, -0.27])
def test_shear(image: np.ndarray, level: float) -> None:
    expected_x = np_transform(image, (1, level, 0, 0, 1, 0))
    expected_y = np_transform(image, (1, 0, 0, level, 1, 0))
    np.testing.assert_array_equal(ours("shear_x", image, level), expected_x)
    np.testing.assert_array_equal(ours("shear_y", image, level), expected_y)


@pytest.mark.parametrize("pixels", [2.0, -3.0, 0.0])
def test_translate(image: np.ndarray, pixels: float) -> None:
    expected_x = np.full_like(image, 128)
    expected_y = np.full_like(image, 128)
    shift = int(pixels)
    for x in range(image.shape[2]):
        if 0 <= x + shift < image.shape[2]:
            expected_x[:, :, x] = image[:, :, x + shift]  # content moves left by `pixels`
    for y in range(image.shape[1]):
        if 0 <= y + shift < image.shape[1]:
            expected_y[:, y] = image[:, y + shift]
    np.testing.assert_array_equal(ours("translate_x", image, pixels), expected_x)
    np.testing.assert_array_equal(ours("translate_y", image, pixels), expected_y)


def test_translate_at_level_9_leaves_only_the_fill_of_a_224_image() -> None:
    image = torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8)
    pixels = aa.level_to_magnitude("TranslateY", 9)  # 225 px, the original's translate_const 250
    assert (aa.translate_y(image, pixels) == 128).all()
    assert (aa.translate_x(image, -aa.level_to_magnitude("TranslateX", 3))[..., :75] == 128).all()


def test_cutout_fills_a_square_around_a_uniform_centre() -> None:
    height, width, pad = 9, 11, 3
    image = torch.zeros(400, 3, height, width, dtype=torch.uint8)
    out = aa.cutout(image, pad, generator=torch.Generator().manual_seed(0))
    masks = {}
    for cy in range(height):
        for cx in range(width):
            mask = np.zeros((height, width), dtype=bool)
            mask[
                max(0, cy - pad) : min(height, cy + pad), max(0, cx - pad) : min(width, cx + pad)
            ] = 1
            masks[(cy, cx)] = mask
    centres = set()
    for filled in out.numpy():
        assert set(np.unique(filled)) <= {0, 128}
        assert (filled[0] == filled[1]).all() and (filled[0] == filled[2]).all()
        found = [centre for centre, mask in masks.items() if (mask == (filled[0] == 128)).all()]
        assert found
        centres.update(found)
    assert len(centres) > 60  # centres spread over the image, edges included


# --- batching and the policy module ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(set(aa.OPS) - {"Cutout"}))
def test_batched_ops_take_one_magnitude_per_image(name: str) -> None:
    images = torch.randint(0, 256, (3, 3, 10, 12), dtype=torch.uint8)
    magnitude = torch.tensor(
        [aa.level_to_magnitude(name, level) for level in (2, 6, 9)], dtype=torch.float32
    )
    if name in aa.NEGATED:
        magnitude = magnitude * torch.tensor([1.0, -1.0, 1.0])
    batched = aa.OPS[name](images, magnitude, 128, None)
    for i in range(3):
        single = aa.OPS[name](images[i : i + 1], magnitude[i : i + 1], 128, None)
        torch.testing.assert_close(batched[i : i + 1], single, rtol=0, atol=0)


@pytest.mark.parametrize("policy", ["imagenet", "good"])
def test_autoaugment_module_is_reproducible_on_single_images_and_batches(policy: aa.Policy) -> None:
    augment = aa.AutoAugment(policy)
    images = torch.randint(0, 256, (6, 3, 20, 24), dtype=torch.uint8)
    first = augment(images, generator=torch.Generator().manual_seed(3))
    again = augment(images, generator=torch.Generator().manual_seed(3))
    assert first.dtype == torch.uint8 and first.shape == images.shape
    assert torch.equal(first, again)
    single = augment(images[0], generator=torch.Generator().manual_seed(3))
    assert single.shape == (3, 20, 24)
    with pytest.raises(ValueError, match="uint8"):
        augment(images.float())
    with pytest.raises(ValueError, match="policy"):
        aa.AutoAugment("cifar")  # type: ignore[arg-type]


def test_sub_policies_are_chosen_uniformly_and_ops_applied_with_their_probabilities() -> None:
    table = parse(ORIGINAL_IMAGENET)
    untouched = np.mean([(1 - first[1]) * (1 - second[1]) for first, second in table])
    # noise in 20..230 on 32×32 (>255 pixels a channel): every op of the policy changes it
    images = torch.randint(20, 231, (2000, 3, 32, 32), dtype=torch.uint8)
    out = aa.AutoAugment("imagenet")(images, generator=torch.Generator().manual_seed(0))
    unchanged = (out == images).flatten(1).all(1).double().mean().item()
    assert unchanged == pytest.approx(untouched, abs=0.025)  # 0.1504
