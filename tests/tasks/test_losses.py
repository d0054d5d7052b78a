"""Loss math and schedules against hand computations and closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from assembled_lightning.tasks import (
    distillation_loss,
    linear_keep_prob,
    mixup,
    smooth,
    soft_cross_entropy,
    warmup_cosine,
)


def test_label_smoothing_cross_entropy_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    targets = smooth(torch.tensor([[1.0, 0.0, 0.0]]), 0.1)
    assert torch.allclose(targets, torch.tensor([[0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3]]))
    log_z = math.log(math.exp(2) + 1 + math.exp(-1))
    expected = -((0.9 + 0.1 / 3) * (2 - log_z) + 0.1 / 3 * (0 - log_z) + 0.1 / 3 * (-1 - log_z))
    assert soft_cross_entropy(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_label_smoothing_over_1000_classes_against_the_originals_1001_way_head() -> None:
    """The original smooths ImageNet labels over its 1001-way head (tf.losses label_smoothing:
    y·(1−ε) + ε/1001; class 0 = background, torch class i = TF class i+1); ours over 1000
    classes. The measured effect: ≈1e-7 per class, 0.001 in the optimum's logit margin."""
    eps, label = 0.1, 7
    ours = smooth(torch.eye(1000, dtype=torch.float64)[label][None], eps)[0]
    original = torch.eye(1001, dtype=torch.float64)[label + 1] * (1 - eps) + eps / 1001
    difference = (ours - original[1:]).abs()
    assert difference.max().item() == pytest.approx(eps / 1000 - eps / 1001, rel=1e-9)
    assert difference.max().item() < 1e-7
    assert original[0].item() == pytest.approx(eps / 1001)  # the background's share

    def margin(targets: torch.Tensor, true: int, other: int) -> float:
        return math.log(targets[true].item() / targets[other].item())  # optimum's logit gap

    assert margin(ours, label, 0) == pytest.approx(math.log(1 + (1 - eps) * 1000 / eps))
    assert margin(original, label + 1, 1) == pytest.approx(math.log(1 + (1 - eps) * 1001 / eps))
    assert margin(original, label + 1, 1) - margin(ours, label, 0) == pytest.approx(1e-3, abs=1e-5)


def beta_draws(seed: int, count: int, alpha: float) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha)).sample((count,))


@pytest.mark.parametrize("kind", ["halves", "keep_batch"])
def test_mixup_mixes_images_targets_and_teacher_with_one_lambda_per_pair(kind: str) -> None:
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    one_hot = torch.eye(4)
    teacher = torch.softmax(torch.randn(4, 4), -1)
    lam = beta_draws(7, 2, 0.2)
    lam2 = beta_draws(7, 4, 0.2)[2:] if kind == "keep_batch" else None
    torch.manual_seed(7)
    mixed = mixup(images, one_hot, teacher, 0.2, kind)
    partners = [[2, 3]] + ([[3, 2]] if kind == "keep_batch" else [])
    lambdas = [lam] + ([lam2] if lam2 is not None else [])
    expected_images, expected_targets, expected_teacher = [], [], []
    for partner, weights in zip(partners, lambdas, strict=True):
        for i, (j, w) in enumerate(zip(partner, weights, strict=True)):
            expected_images.append(w * images[i] + (1 - w) * images[j])
            expected_targets.append(w * one_hot[i] + (1 - w) * one_hot[j])
            expected_teacher.append(w * teacher[i] + (1 - w) * teacher[j])
    assert mixed.images.shape[0] == (2 if kind == "halves" else 4)
    assert torch.allclose(mixed.images, torch.stack(expected_images), atol=1e-6)
    assert torch.allclose(mixed.targets, torch.stack(expected_targets), atol=1e-6)
    assert mixed.teacher_probs is not None
    assert torch.allclose(mixed.teacher_probs, torch.stack(expected_teacher), atol=1e-6)


def test_mixup_rejects_odd_batches_and_unknown_types() -> None:
    with pytest.raises(ValueError, match="even"):
        mixup(torch.zeros(3, 1), torch.zeros(3, 2), None, 0.2)
    with pytest.raises(ValueError, match="halves"):
        mixup(torch.zeros(2, 1), torch.zeros(2, 2), None, 0.2, "random")  # type: ignore[arg-type]


def test_distillation_with_temperature_by_hand() -> None:
    logits = torch.tensor([[1.0, 3.0]])
    teacher = torch.softmax(torch.tensor([[2.0, 0.0]]) / 2.0, -1)
    student_log_probs = torch.log_softmax(logits / 2.0, -1)
    expected = 4.0 * -(teacher * student_log_probs).sum()
    assert distillation_loss(logits, teacher, 2.0).item() == pytest.approx(expected.item())


def test_warmup_cosine_closed_form() -> None:
    warmup, total = 10, 110
    assert warmup_cosine(0, warmup, total) == 0.0
    assert warmup_cosine(5, warmup, total) == 0.5
    assert warmup_cosine(10, warmup, total) == 1.0
    assert warmup_cosine(60, warmup, total) == pytest.approx(0.5)
    assert warmup_cosine(110, warmup, total) == pytest.approx(0.0)
    assert warmup_cosine(35, warmup, total) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_keep_prob_schedule_is_linear_per_step() -> None:
    assert linear_keep_prob(0, 100, 1.0, 0.9) == 1.0
    assert linear_keep_prob(50, 100, 1.0, 0.9) == pytest.approx(0.95)
    assert linear_keep_prob(100, 100, 0.9, 0.7) == pytest.approx(0.7)
    assert linear_keep_prob(150, 100, 0.9, 0.7) == pytest.approx(0.7)
