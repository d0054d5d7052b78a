"""The eager path's in-place activations and adds and its copy-free SK fusion, BigLittleNet merge
and DropBlock (issue #14) change no output: logits and gradients of every registered model match
those saved from the code before the change (``fixtures/eager_logits.pt``, see eager_outputs.py),
in eval mode, in train mode at keep_prob 1 and, for the DropBlock rows, at keep_prob 0.9."""

from __future__ import annotations

import pytest
import torch
from eager_outputs import FIXTURE, model_outputs, modes, thin_model

from assembled_lightning.models import DropBlock2d, list_models

Saved = dict[str, dict[str, dict[str, torch.Tensor]]]
TOLERANCE = 1e-6
"""Relative to the largest value of each output (float64). Only the BigLittleNet merge's
backward adds in another order than before (a big pixel's 2×2 contributions), so the changes
stay below 1e-10; in float32 the logits are even bit for bit the same on one machine."""


@pytest.fixture(scope="module")
def saved() -> Saved:
    return torch.load(FIXTURE, weights_only=True)


def test_the_fixture_covers_every_registered_model(saved: Saved) -> None:
    assert sorted(saved) == list_models()
    assert all(sorted(saved[name]) == sorted(modes(name)) for name in saved)


@pytest.mark.parametrize("name", list_models())
def test_logits_and_gradients_are_todays(name: str, saved: Saved) -> None:
    for mode in modes(name):
        outputs = model_outputs(thin_model(name), mode)
        for key, expected in saved[name][mode].items():
            difference = (outputs[key] - expected).abs().max().item()
            scale = expected.abs().max().item()
            assert difference <= TOLERANCE * scale, f"{mode} {key}: max |Δ| {difference:.1e}"


def test_dropblock_does_no_work_in_eval_mode_or_at_keep_prob_1() -> None:
    """It returns its very input and draws no random numbers (the RNG state is untouched)."""
    layer = DropBlock2d(block_size=3)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    state = torch.get_rng_state()
    assert layer.train()(x) is x  # keep_prob 1
    layer.set_keep_prob(0.5)
    assert layer.eval()(x) is x
    assert torch.equal(torch.get_rng_state(), state)
    assert layer.train()(x) is not x
