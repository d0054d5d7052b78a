"""mCE / relative mCE / mFR / ECE against hand computations and the published AlexNet numbers."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassCalibrationError

from assembled_lightning.robustness.baselines import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS,
    ALEXNET_FLIP_PROBABILITIES,
    ALEXNET_MEAN_ERRORS,
    ALL_IMAGENET_P_PERTURBATIONS,
    IMAGENET_P_PERTURBATIONS,
    IMAGENET_P_VALIDATION_PERTURBATIONS,
    NOISE_PERTURBATIONS,
)
from assembled_lightning.robustness.corruptions import (
    BENCHMARK_CORRUPTIONS,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    SEVERITIES,
)
from assembled_lightning.robustness.metrics import (
    CorruptionError,
    CorruptionErrors,
    ExpectedCalibrationError,
    FlipProbability,
    FlipRates,
    corruption_error,
    mean_corruption_error,
    relative_mean_corruption_error,
    unnormalized_mean_error,
)

# The published per-corruption normalisers (AugMix ALEXNET_ERR, ROBUSTNESS.md §0 / §2.3).
PUBLISHED_MEANS = dict(
    zip(
        CORRUPTIONS,
        (
            *(0.886428, 0.894468, 0.922640, 0.819880, 0.826268, 0.785948, 0.798360, 0.866816),
            *(0.826572, 0.819324, 0.564592, 0.853204, 0.646056, 0.717840, 0.606500),
            *(0.845388, 0.787108, 0.717512, 0.658248),
        ),
        strict=True,
    )
)
IMAGES = 50_000  # per severity in ImageNet-C: AlexNet's 5-decimal errors are whole counts


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Many small tensor ops: extra intra-op threads only contend on a shared CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# baselines ------------------------------------------------------------------------------------


def test_alexnet_tables_cover_exactly_the_corruptions_and_perturbations() -> None:
    assert set(ALEXNET_ERRORS) == {(c, s) for c in CORRUPTIONS for s in SEVERITIES}
    assert tuple(ALEXNET_MEAN_ERRORS) == CORRUPTIONS
    assert set(ALEXNET_FLIP_PROBABILITIES) == set(ALL_IMAGENET_P_PERTURBATIONS)
    assert len(IMAGENET_P_PERTURBATIONS) == 10 and len(IMAGENET_P_VALIDATION_PERTURBATIONS) == 4
    assert not set(IMAGENET_P_PERTURBATIONS) & set(IMAGENET_P_VALIDATION_PERTURBATIONS)
    assert {"translate", "rotate", "tilt", "scale", "snow"} <= set(IMAGENET_P_PERTURBATIONS)
    assert sorted(NOISE_PERTURBATIONS) == ["gaussian_noise", "shot_noise", "speckle_noise"]
    assert math.isclose(ALEXNET_CLEAN_ERROR, 0.43478)


def test_alexnet_rows_average_to_the_published_normalisers() -> None:
    for corruption, published in PUBLISHED_MEANS.items():
        assert ALEXNET_MEAN_ERRORS[corruption] == pytest.approx(published, abs=5e-7), corruption
    means = [ALEXNET_MEAN_ERRORS[c] for c in BENCHMARK_CORRUPTIONS]
    assert sum(means) / 15 == pytest.approx(0.78899, abs=5e-6)
    assert sum(ALEXNET_MEAN_ERRORS.values()) / 19 == pytest.approx(0.78122, abs=5e-6)
    for (corruption, _), error in ALEXNET_ERRORS.items():  # whole images out of 50 000
        assert abs(error * IMAGES - round(error * IMAGES)) < 1e-6, corruption


# ImageNet-C ------------------------------------------------------------------------------------


def feed(metric: CorruptionError, errors: dict[tuple[str, int], float], clean: float) -> None:
    """Updates ``metric`` with 50 000 images per cell, round(error · 50 000) of them wrong."""
    target = torch.zeros(IMAGES, dtype=torch.long)
    for key, error in [*errors.items(), (("clean", 0), clean)]:
        preds = target.clone()
        preds[: round(error * IMAGES)] = 1
        corruption, severity = key
        metric.update(preds, target, corruption, None if corruption == "clean" else severity)


def test_alexnet_itself_scores_100_everywhere() -> None:
    metric = CorruptionError()
    feed(metric, dict(ALEXNET_ERRORS), ALEXNET_CLEAN_ERROR)
    result = metric.compute()
    assert result.missing == () and result.incomplete == ()
    for corruption in CORRUPTIONS:
        assert result.corruption_error(corruption) == pytest.approx(1.0, abs=1e-12)
        assert result.relative_corruption_error(corruption) == pytest.approx(1.0, abs=1e-12)
    assert result.mce() * 100 == pytest.approx(100.0, abs=1e-10)
    assert result.mce(CORRUPTIONS) * 100 == pytest.approx(100.0, abs=1e-10)
    assert result.relative_mce() * 100 == pytest.approx(100.0, abs=1e-10)
    assert result.relative_mce(CORRUPTIONS) * 100 == pytest.approx(100.0, abs=1e-10)
    assert result.unnormalized_mce() == pytest.approx(0.78122, abs=5e-6)  # over the 19 given
    assert result.unnormalized_mce(BENCHMARK_CORRUPTIONS) == pytest.approx(0.78899, abs=5e-6)


def test_15_versus_19_corruption_mce() -> None:
    # AlexNet on the 15 benchmark corruptions, perfect on the 4 extras
    errors = {(c, s): 0.0 if c in EXTRA_CORRUPTIONS else e for (c, s), e in ALEXNET_ERRORS.items()}
    metric = CorruptionError()
    feed(metric, errors, 0.2)
    result = metric.compute()
    assert result.mce() * 100 == pytest.approx(100.0, abs=1e-10)  # official: extras ignored
    assert result.mce(CORRUPTIONS) * 100 == pytest.approx(15 / 19 * 100, abs=1e-10)  # 78.947…
    summary = result.as_dict()
    assert summary["mce_15"] == pytest.approx(1.0) and summary["mce_19"] == pytest.approx(15 / 19)


def test_hand_made_table_with_its_own_baseline() -> None:
    baseline = {("a", s): 0.6 for s in SEVERITIES} | {("b", s): 0.8 for s in SEVERITIES}
    errors = {("a", s): 0.1 * s for s in SEVERITIES} | {("b", s): 0.2 for s in SEVERITIES}
    # CE_a = 1.5 / 3 = 0.5, CE_b = 1.0 / 4 = 0.25
    assert corruption_error(errors, "a", baseline=baseline) == pytest.approx(0.5)
    assert corruption_error(errors, "b", baseline=baseline) == pytest.approx(0.25)
    assert mean_corruption_error(errors, ("a", "b"), baseline=baseline) == pytest.approx(0.375)
    # clean 0.05, baseline clean 0.2: a (1.5 − 0.25) / (3 − 1) = 0.625, b 0.75 / 3 = 0.25
    relative = relative_mean_corruption_error(
        errors, 0.05, ("a", "b"), baseline=baseline, baseline_clean_error=0.2
    )
    assert relative == pytest.approx((0.625 + 0.25) / 2)
    assert unnormalized_mean_error(errors) == pytest.approx((0.3 + 0.2) / 2)


def test_hand_made_table_against_alexnet() -> None:
    # half AlexNet's error on the 15, AlexNet's on the 4 extras
    errors = {
        (c, s): e if c in EXTRA_CORRUPTIONS else e / 2 for (c, s), e in ALEXNET_ERRORS.items()
    }
    result = CorruptionErrors(errors, clean_error=0.1)
    assert result.mce() == pytest.approx(0.5)
    assert result.mce(CORRUPTIONS) == pytest.approx((15 * 0.5 + 4 * 1.0) / 19)
    assert result.unnormalized_mce(BENCHMARK_CORRUPTIONS) == pytest.approx(0.78899 / 2, abs=5e-6)
    # loses half of what AlexNet loses: E = clean + (E_AlexNet − clean_AlexNet) / 2
    clean = 0.2
    halfway = {
        (c, s): clean + (e - ALEXNET_CLEAN_ERROR) / 2 for (c, s), e in ALEXNET_ERRORS.items()
    }
    assert CorruptionErrors(halfway, clean).relative_mce() * 100 == pytest.approx(50.0)


def test_a_missing_severity_or_corruption_raises_and_a_subset_still_averages() -> None:
    metric = CorruptionError()
    target = torch.arange(4)
    for severity in (1, 2, 3, 4):  # severity 5 never evaluated
        metric.update(target, target, "gaussian_noise", severity)
    for severity in SEVERITIES:
        metric.update(torch.tensor([0, 1, 0, 0]), target, "fog", severity)  # 2 of 4 wrong
    result = metric.compute()
    assert result.incomplete == ("gaussian_noise",)
    assert "fog" not in result.missing and len(result.missing) == 17
    with pytest.raises(ValueError, match=r"gaussian_noise: severities \[5\]"):
        result.corruption_error("gaussian_noise")
    with pytest.raises(ValueError, match="not evaluated: shot_noise"):
        result.mce()
    with pytest.raises(ValueError, match="clean error"):
        result.relative_corruption_error("fog")
    assert result.corruption_error("fog") == pytest.approx(0.5 / PUBLISHED_MEANS["fog"], 1e-6)
    assert result.unnormalized_mce(["fog"]) == 0.5
    with pytest.raises(ValueError, match="gaussian_noise"):
        result.unnormalized_mce()  # the incomplete one is not averaged in silently
    assert "ce/fog" in result.as_dict() and "mce_15" not in result.as_dict()


def test_per_image_corruptions_severities_and_clean_images() -> None:
    metric = CorruptionError()
    logits = torch.eye(3)[[0, 1, 2, 0, 1]] * 5  # predicts 0 1 2 0 1
    target = torch.tensor([0, 0, 2, 0, 0])
    metric.update(
        logits, target, ["fog", "fog", "clean", "snow", "clean"], torch.tensor([1, 1, 9, 5, 0])
    )
    result = metric.compute()
    assert result.errors == {("fog", 1): 0.5, ("snow", 5): 0.0}
    assert result.clean_error == 0.5
    with pytest.raises(ValueError, match="unknown corruption 'smog'"):
        metric.update(target, target, "smog", 1)
    with pytest.raises(ValueError, match="severities must be in 1…5"):
        metric.update(target[:2], target[:2], ["fog", "clean"], torch.tensor([6, 6]))
    with pytest.raises(ValueError, match="integer severity"):
        metric.update(target, target, "fog")


# ImageNet-P ------------------------------------------------------------------------------------


def reference_flip_probability(predictions: np.ndarray, noise: bool, difficulty: int) -> float:
    """ImageNet-P/test.py's rule, transcribed as loops: per video the mean over its compared
    pairs, then the mean over videos."""
    stride = 1 if noise else difficulty
    per_video = []
    for video in predictions:
        flips = []
        for start in range(stride):
            previous = video[start]
            for frame in video[start::stride][1:]:
                flips.append(int(previous != frame))
                if not noise:
                    previous = frame
        per_video.append(np.mean(flips))
    return float(np.mean(per_video))


def reference_top5_distance(scores: np.ndarray, noise: bool, difficulty: int) -> float:
    """test.py's top-5 distance from full ordinal rankings: Σ_k<5 |C(k) − C(σ_k − 1)| with
    C = cumulative top-5 indicator and σ_k the rank in frame B of frame A's k-th class."""
    cumulative = np.cumsum([0] + [1] * 5 + [0] * (scores.shape[-1] - 6))
    stride = 1 if noise else difficulty
    per_video = []
    for video in scores:
        ranks = np.argsort(np.argsort(-video, axis=-1, kind="stable"), axis=-1) + 1
        distances = []
        for start in range(stride):
            first = ranks[start]
            for second in ranks[start::stride][1:]:
                sigma = second[np.argsort(first)]
                distances.append(np.abs(cumulative[:5] - cumulative[sigma - 1][:5]).sum())
                if not noise:
                    first = second
        per_video.append(np.mean(distances))
    return float(np.mean(per_video))


def test_flip_probability_on_hand_made_sequences() -> None:
    metric = FlipProbability()
    metric.update(torch.tensor([[1, 2, 1, 2, 1], [3, 3, 3, 3, 3]]), "rotate")  # (4/4 + 0) / 2
    metric.update(torch.tensor([[1, 2, 1, 2, 1], [3, 3, 3, 3, 3]]), "gaussian_noise")  # vs frame 1
    metric.update(torch.tensor([[1, 1, 2, 2, 3, 3]]), "translate", difficulty=2)  # 0→2 1→3 2→4 3→5
    metric.update(torch.tensor([[1, 1, 2, 2, 3, 3]]), "translate", difficulty=1)  # 2 of 5
    metric.update(torch.tensor([[1, 1, 2, 2, 3, 3]]), "shot_noise", difficulty=2)  # stride 1
    fp = metric.compute().flip_probabilities
    assert fp == {
        ("rotate", 1): 0.5,
        ("gaussian_noise", 1): 0.25,
        ("translate", 2): 1.0,
        ("translate", 1): 0.4,
        ("shot_noise", 2): 0.8,
    }


@pytest.mark.parametrize(
    ("perturbation", "difficulty"), [("rotate", 1), ("scale", 2), ("tilt", 3), ("shot_noise", 3)]
)
def test_flip_probability_and_top5_distance_match_the_reference_rule(
    perturbation: str, difficulty: int
) -> None:
    generator = torch.Generator().manual_seed(difficulty)
    scores = torch.randn(6, 11, 12, generator=generator, dtype=torch.float64)
    scores[:, 1::2] = scores[:, 0::2][:, :5] + 0.3 * scores[:, 1::2]  # correlated frames
    metric = FlipProbability()
    metric.update(scores[:4], perturbation, difficulty)
    metric.update(scores[4:], perturbation, difficulty)
    result = metric.compute()
    noise = perturbation in NOISE_PERTURBATIONS
    expected_fp = reference_flip_probability(scores.argmax(-1).numpy(), noise, difficulty)
    expected_t5d = reference_top5_distance(scores.numpy(), noise, difficulty)
    assert 0 < expected_fp < 1 and expected_t5d > 0
    assert result.flip_probabilities[perturbation, difficulty] == pytest.approx(expected_fp)
    assert result.top5_distances[perturbation, difficulty] == pytest.approx(expected_t5d)


def test_top5_distance_of_hand_made_rankings() -> None:
    first = torch.tensor([9.0, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    swapped = first[[1, 0, *range(2, 10)]]  # top-1 and top-2 exchanged: |0−1| + |1−0|
    dropped = torch.tensor([0.0, 8, 7, 6, 5, 4, 3, 2, 1, 9])  # class 0 falls out of the top 5
    metric = FlipProbability()
    metric.update(torch.stack([first, first]).unsqueeze(0), "rotate")
    metric.update(torch.stack([first, swapped]).unsqueeze(0), "tilt")
    metric.update(torch.stack([first, dropped]).unsqueeze(0), "scale")
    # dropped: earlier classes 0,1,2,3,4 sit at later ranks ≥5,1,2,3,4 → 5 + 0 + 0 + 0 + 0
    distances = metric.compute().top5_distances
    assert distances == {("rotate", 1): 0.0, ("tilt", 1): 2.0, ("scale", 1): 5.0}


def test_flip_rate_and_mfr() -> None:
    alexnet = FlipRates(
        {(p, 1): ALEXNET_FLIP_PROBABILITIES[p] for p in ALL_IMAGENET_P_PERTURBATIONS}, {}
    )
    assert alexnet.mfr() * 100 == pytest.approx(100.0)
    twice = {(p, 1): 2 * ALEXNET_FLIP_PROBABILITIES[p] for p in IMAGENET_P_PERTURBATIONS}
    assert FlipRates(twice, {}).mfr() == pytest.approx(2.0)
    assert FlipRates(twice, {}).flip_rate("rotate") == pytest.approx(2.0)
    partial = FlipRates({("rotate", 1): 0.1, ("shear", 1): 0.2}, {})
    assert partial.flip_rate("rotate") == pytest.approx(0.1 / 0.13104)
    assert "gaussian_noise" in partial.missing
    with pytest.raises(ValueError, match="not evaluated"):
        partial.mfr()


def test_mixed_video_lengths_and_bad_input_raise() -> None:
    metric = FlipProbability()
    metric.update(torch.zeros(2, 31, dtype=torch.long), "rotate")
    metric.update(torch.zeros(2, 41, dtype=torch.long), "rotate")
    with pytest.raises(ValueError, match="31 and 41 frames"):
        metric.compute()
    with pytest.raises(ValueError, match="unknown perturbation"):
        metric.update(torch.zeros(2, 5, dtype=torch.long), "fog")
    with pytest.raises(ValueError, match="difficulty"):
        metric.update(torch.zeros(2, 5, dtype=torch.long), "rotate", difficulty=4)


# ECE -------------------------------------------------------------------------------------------


def edge_case_probabilities(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    probs = torch.zeros(4, 10, dtype=dtype)
    probs[0] = 0.1  # confidence exactly 0.1, correct → bin 1 in the original
    probs[1] = 0.85 / 9
    probs[1, 1] = 0.15  # 0.15, wrong → bin 2
    probs[2, 3], probs[2, 0] = 0.9, 0.1  # exactly 0.9, correct → bin 9
    probs[3, 4] = 1.0  # 1.0, wrong → bin 10
    return probs, torch.tensor([0, 2, 3, 5])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ece_by_hand_with_confidences_on_bin_edges(dtype: torch.dtype) -> None:
    probs, target = edge_case_probabilities(dtype)
    metric = ExpectedCalibrationError(from_logits=False)
    metric.update(probs, target)
    # one image per bin: (|1 − 0.1| + |0 − 0.15| + |1 − 0.9| + |0 − 1|) / 4
    assert float(metric.compute()) == pytest.approx((0.9 + 0.15 + 0.1 + 1.0) / 4, abs=1e-7)
    # torchmetrics closes bins on the left: 0.1 shares a bin with 0.15 (2·|0.5 − 0.125| / 4 …)
    theirs = MulticlassCalibrationError(10, n_bins=10, norm="l1")
    theirs.update(probs.float(), target)
    assert abs(float(theirs.compute()) - 0.5375) > 0.05


def test_ece_from_logits_matches_the_original_rule() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(500, 7, generator=generator)
    target = torch.randint(0, 7, (500,), generator=generator)
    metric = ExpectedCalibrationError()
    metric.update(logits[:200], target[:200])
    metric.update(logits[200:], target[200:])
    # the original, as NumPy: bins (lo, hi] on float32 edges, Σ_b (n_b/N)|acc_b − conf_b|
    probs = torch.softmax(logits, -1).numpy()
    confidence, correct = probs.max(-1), probs.argmax(-1) == target.numpy()
    edges = np.array([0 - 1e-7] + [(i + 1) / 10 for i in range(9)] + [1 + 1e-7], np.float32)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    assert float(metric.compute()) == pytest.approx(ece, abs=1e-6)


def test_ece_rejects_bad_input() -> None:
    metric = ExpectedCalibrationError(from_logits=False)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="before any update"):
        metric.compute()
    with pytest.raises(ValueError, match="from_logits=True"):
        metric.update(torch.tensor([[2.0, -1.0]]), torch.tensor([0]))
