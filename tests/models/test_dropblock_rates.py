"""DropBlock's per-stage γ inside whole models, numerically (ORIGINAL.md §1.7).

The original drops with γ = gamma_scale · (1 − keep_prob) · H·W / bs² / ((H − bs + 1)(W − bs + 1))
on every map it sees, with gamma_scale 0.25 in stage 3 and 1.0 in stage 4 (block size 7). A
uniform draw u fires a seed iff u < γ, so with every draw set to one value, each DropBlock call
of a training forward pass must drop everything when u is just below the γ of its stage and map
size, and nothing when u is just above. Checked at each γ that occurs in the pass, on both
sides, which pins the scale of every call (γ of stage 3 with a scale of 1 would be 4× larger).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from assembled_lightning.models import DropBlock2d, create_model

KEEP_PROB, BLOCK = 0.9, 7


def original_gamma(height: int, width: int, gamma_scale: float) -> float:
    block = min(BLOCK, height, width)  # ours shrinks the block on smaller maps
    seeds = (height - block + 1) * (width - block + 1)
    return gamma_scale * (1 - KEEP_PROB) * height * width / block**2 / seeds


def resnet_stage(name: str) -> float:
    """The original's γ-scale of a ResNet module by its stage: 0.25 in stage 3, 1 in stage 4."""
    return {"layer3": 0.25, "layer4": 1.0}[name.split(".")[0]]


def mobilenet_stage(name: str) -> float:
    """The MobileNet rows (Table 9): as stage 3 in the 14-px blocks 5-10, stage 4 in 11-12."""
    index = int(name.split(".")[1])
    return 0.25 if 5 <= index <= 10 else 1.0 if index in (11, 12) else float("nan")


@pytest.mark.parametrize(
    ("name", "overrides", "scale_of", "side"),
    [
        ("assemble_resnet50", {"base_width": 8}, resnet_stage, 224),
        (
            "resnet50d_se_dropblock",
            {"base_width": 8, "block_counts": (1, 1, 2, 2)},
            resnet_stage,
            224,
        ),
        ("se_mobilenet_v1", {"width_multiplier": 0.25}, mobilenet_stage, 224),
    ],
)
def test_every_dropblock_call_uses_its_stages_gamma(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    overrides: dict[str, Any],
    scale_of: Callable[[str], float],
    side: int,
) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, **overrides).train()
    assert model.set_dropblock_keep_prob(KEEP_PROB) > 0
    scale_of_layer = {
        id(module): scale_of(module_name)
        for module_name, module in model.named_modules()
        if isinstance(module, DropBlock2d)
    }
    calls: list[tuple[float, bool]] = []  # (γ of the spec for this call, whether it dropped all)
    drop_mask = DropBlock2d.drop_mask

    def recording(self: DropBlock2d, x: torch.Tensor) -> torch.Tensor:
        mask = drop_mask(self, x)
        gamma = original_gamma(x.shape[-2], x.shape[-1], scale_of_layer[id(self)])
        calls.append((gamma, bool(mask.max() == 0)))
        assert mask.min() == 0 or mask.max() == 1  # all seeds alike: nothing or everything
        return mask

    monkeypatch.setattr(DropBlock2d, "drop_mask", recording)
    draw: list[float] = [0.5]

    def constant_rand(*shape: Any, **kwargs: Any) -> torch.Tensor:
        return torch.full(shape, draw[0], device=kwargs.get("device"))

    monkeypatch.setattr(torch, "rand", constant_rand)
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        model(x)  # the map sizes: every call at u = 0.5 keeps everything (γ < 0.5)
        gammas = sorted({gamma for gamma, _ in calls})
        assert all(not dropped for _, dropped in calls)
        assert len(gammas) >= 2, gammas  # both stages (and several map sizes)
        for gamma in gammas:
            for factor in (1 - 1e-3, 1 + 1e-3):
                draw[0] = gamma * factor
                calls.clear()
                model(x)
                assert calls
                for expected_gamma, dropped in calls:
                    assert dropped == (draw[0] < expected_gamma), (draw[0], expected_gamma)
