"""GeM pooling against hand computations: p = 1 is the mean, a large p approaches the max, a
closed-form value, the eps clamp of zeros and negatives; p fixed (a buffer) or learned."""

from __future__ import annotations

import pytest
import torch

from assembled_lightning.retrieval import GeM, GlobalAvgPool, make_pooling


def test_gem_with_p_one_is_the_mean() -> None:
    x = torch.rand(2, 3, 4, 5, dtype=torch.float64) + 0.1
    torch.testing.assert_close(GeM(p=1.0)(x.float()).double(), x.mean((2, 3)), atol=1e-6, rtol=0)


def test_gem_with_a_large_p_approaches_the_max() -> None:
    x = torch.tensor([[[[0.2, 0.5], [0.9, 0.4]]]])
    # (mean of x^p)^(1/p) = max · (1/4)^(1/p) when the max dominates: 0.9 · 4^(-1/p)
    pooled = GeM(p=200.0)(x.double()).item()
    assert pooled == pytest.approx(0.9 * 4 ** (-1 / 200), rel=1e-6)
    assert 0.9 * 0.99 < pooled < 0.9


def test_gem_closed_form_value() -> None:
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # p = 3: ((1 + 8 + 27 + 64) / 4)^(1/3)
    assert GeM()(x).item() == pytest.approx(25 ** (1 / 3), rel=1e-6)
    assert GlobalAvgPool()(x).item() == pytest.approx(2.5)


def test_gem_clamps_zeros_and_negatives_to_eps_with_finite_gradients() -> None:
    x = torch.tensor([[[[-1.0, 0.0], [2.0, 0.0]]]], requires_grad=True)
    pooled = GeM(p=2.0, eps=0.5)(x)  # [0.5, 0.5, 2, 0.5]: ((0.25 · 3 + 4) / 4)^(1/2)
    assert pooled.item() == pytest.approx(((0.25 * 3 + 4) / 4) ** 0.5, rel=1e-6)
    pooled.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad[0, 0, 0, 0] == 0 and x.grad[0, 0, 1, 0] > 0  # clamped inputs get no gradient


def test_p_is_a_buffer_when_fixed_and_a_parameter_when_learned() -> None:
    fixed, learned = GeM(p=3.0), GeM(p=3.0, learn_p=True)
    assert list(fixed.parameters()) == [] and "p" in dict(fixed.named_buffers())
    assert [name for name, _ in learned.named_parameters()] == ["p"]
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    learned(x).sum().backward()
    # d/dp (m_p)^(1/p) with m_p = mean(x^p): y · (mean(x^p ln x) / (p m_p) − ln(m_p) / p²)
    values = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    m = (values**3).mean()
    y = m ** (1 / 3)
    expected = y * ((values**3 * values.log()).mean() / (3 * m) - m.log() / 9)
    assert learned.p.grad is not None
    assert learned.p.grad.item() == pytest.approx(expected.item(), rel=1e-4)


def test_make_pooling_and_bad_values() -> None:
    assert isinstance(make_pooling("gap"), GlobalAvgPool)
    gem = make_pooling("gem", p=4.0)
    assert isinstance(gem, GeM) and float(gem.p) == 4.0
    with pytest.raises(ValueError, match="did you mean 'gem'"):
        make_pooling("gen")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="p must be >= 1"):
        GeM(p=0.5)
