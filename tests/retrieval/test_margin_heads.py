"""Margin heads against closed forms: with embeddings and class directions at known angles the
logits are s·cos θ, s·(cos θ_y − m) and s·cos(θ_y + m) (ArcFace's continuation beyond
π − m), the loss is the cross-entropy of those logits by hand, and ArcFace stays finite
(no NaN gradient) at θ = 0 and θ = π."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from assembled_lightning.retrieval import MarginHead


def head_at_angles(kind: str, scale: float, margin: float) -> MarginHead:
    """Two class directions in the plane: w0 = (1, 0), w1 = (0, 2) (unnormalised on purpose)."""
    head = MarginHead(2, 2, kind, scale, margin)  # type: ignore[arg-type]
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    return head


def unit(angle: float, length: float = 1.0) -> list[float]:
    return [length * math.cos(angle), length * math.sin(angle)]


ANGLES = [0.3, 1.0, 2.0]  # angle of each embedding with w0; with w1 it is |π/2 − angle|


def hand_logits(kind: str, scale: float, margin: float, targets: list[int]) -> np.ndarray:
    rows = []
    for angle, target in zip(ANGLES, targets, strict=True):
        thetas = [angle, abs(math.pi / 2 - angle)]
        row = [math.cos(t) for t in thetas]
        t = thetas[target]
        if kind == "cosface":
            row[target] = math.cos(t) - margin
        elif kind == "arcface":
            row[target] = math.cos(t + margin)
        rows.append([scale * v for v in row])
    return np.array(rows)


def hand_cross_entropy(logits: np.ndarray, targets: list[int]) -> float:
    losses = [
        math.log(sum(math.exp(v) for v in row)) - row[t]
        for row, t in zip(logits.tolist(), targets, strict=True)
    ]
    return sum(losses) / len(losses)


@pytest.mark.parametrize(
    ("kind", "margin"), [("norm_softmax", 0.0), ("cosface", 0.35), ("arcface", 0.3)]
)
def test_logits_and_loss_match_the_closed_forms(kind: str, margin: float) -> None:
    scale, targets = 10.0, [0, 1, 1]
    head = head_at_angles(kind, scale, margin)
    embeddings = torch.tensor([unit(a, length=3.0) for a in ANGLES])  # any length
    logits = head(embeddings, torch.tensor(targets))
    expected = hand_logits(kind, scale, margin, targets)
    np.testing.assert_allclose(logits.detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(targets))
    assert loss.item() == pytest.approx(hand_cross_entropy(expected, targets), rel=1e-5)
    # without targets (evaluation) no margin: plain s · cos θ
    plain = head(embeddings).detach().numpy()
    np.testing.assert_allclose(plain, hand_logits("norm_softmax", scale, 0, targets), atol=1e-5)


def test_arcface_continues_linearly_beyond_pi_minus_m() -> None:
    margin, scale = 0.3, 1.0
    head = head_at_angles("arcface", scale, margin)
    angle = math.pi - 0.1  # θ0 + m > π: cos(θ + m) would rise again
    logits = head(torch.tensor([unit(angle)]), torch.tensor([0]))
    expected = math.cos(angle) - margin * math.sin(margin)  # InsightFace's continuation
    assert logits[0, 0].item() == pytest.approx(expected, abs=1e-6)
    inside = head(torch.tensor([unit(math.pi - 0.4)]), torch.tensor([0]))[0, 0].item()
    assert inside == pytest.approx(math.cos(math.pi - 0.1), abs=1e-6)  # cos(θ + m), θ+m = π−0.1


@pytest.mark.parametrize("angle", [0.0, math.pi])
def test_arcface_gradients_are_finite_on_and_opposite_the_class_direction(angle: float) -> None:
    head = head_at_angles("arcface", 30.0, 0.5)
    embeddings = torch.tensor([unit(angle)], requires_grad=True)  # θ0 exactly 0 or π
    loss = torch.nn.functional.cross_entropy(head(embeddings, torch.tensor([0])), torch.tensor([0]))
    loss.backward()
    assert torch.isfinite(loss)
    assert embeddings.grad is not None and torch.isfinite(embeddings.grad).all()
    assert head.weight.grad is not None and torch.isfinite(head.weight.grad).all()


def test_bad_values_name_themselves() -> None:
    with pytest.raises(ValueError, match="did you mean 'arcface'"):
        MarginHead(4, 3, "arcfase")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="norm_softmax has no margin"):
        MarginHead(4, 3, "norm_softmax", margin=0.3)
    with pytest.raises(ValueError, match="scale must be > 0"):
        MarginHead(4, 3, "cosface", scale=0.0, margin=0.1)
    with pytest.raises(ValueError, match="radians"):
        MarginHead(4, 3, "arcface", margin=2.0)
