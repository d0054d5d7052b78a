"""Outputs of every registered model on fixed weights and a fixed input, so that a change meant
to make the eager path cheaper can be shown to change no output (test_eager_efficiency.py).

Everything runs in float64: train-mode BN on these thin models' 2×2 maps amplifies rounding
about 10⁴-fold, so float32 outputs would differ by more than 1e-6 between two CPUs (other
kernels, other rounding) even for the same code; in float64 that noise stays below 1e-10.

``python tests/models/eager_outputs.py`` wrote ``fixtures/eager_logits.pt`` from the code as it
was before issue #14's eager-path changes (commit 6a5527a). Rerun it only when a change of the
models' outputs is intended.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import assembled_lightning
from assembled_lightning.models import (
    Backbone,
    MobileNetConfig,
    create_model,
    get_model_entry,
    list_models,
)

FIXTURE = Path(__file__).parent / "fixtures" / "eager_logits.pt"
IMAGE_SHAPE = (2, 3, 64, 64)  # 64 px: the smallest side every variant takes (5-tap blur)
NUM_CLASSES = 10
MODES = ("eval", "train", "train_dropblock")
"""'train' runs with DropBlock at keep_prob 1 (no randomness at all); 'train_dropblock' at 0.9
with the global seed fixed right before the forward, so the seed maps are drawn in the same order
(only for the variants that have DropBlock layers)."""
DROPBLOCK_KEEP_PROB = 0.9


def randomise_batch_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN γ (never zero), β and running statistics, so every residual branch counts;
    returns ``model`` (its train/eval mode untouched)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                assert bn.running_mean is not None and bn.running_var is not None
                n = bn.num_features
                bn.weight.copy_(torch.rand(n, generator=generator) * 0.5 + 0.5)
                bn.bias.copy_(torch.randn(n, generator=generator) * 0.1)
                bn.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                bn.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
    return model


def thin_model(name: str) -> Backbone:
    """A thin member of the variant (two blocks per stage, so identity shortcuts are covered)
    with seeded weights and random BN statistics."""
    config = get_model_entry(name).config
    overrides: dict[str, object] = (
        {"width_multiplier": 0.25}
        if isinstance(config, MobileNetConfig)
        else {"base_width": 8, "block_counts": (2, 2, 2, 2)}
    )
    torch.manual_seed(0)
    model = create_model(name, num_classes=NUM_CLASSES, **overrides)
    assert isinstance(model, Backbone)
    randomise_batch_norms(model)
    return model


def has_dropblock(name: str) -> bool:
    return bool(get_model_entry(name).config.dropblock)


def model_outputs(model: Backbone, mode: str) -> dict[str, torch.Tensor]:
    """Logits of one float64 forward and summaries of the gradients of one backward (of a fixed
    random projection of the logits): per-channel norms and random probes of the input gradient
    and the norm of every parameter's gradient."""
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(IMAGE_SHAPE, generator=generator, dtype=torch.float64)
    images.requires_grad_()
    cotangent = torch.randn(IMAGE_SHAPE[0], NUM_CLASSES, generator=generator, dtype=torch.float64)
    probe = torch.randn(IMAGE_SHAPE, generator=generator, dtype=torch.float64)
    model.double().train(mode != "eval")
    model.set_dropblock_keep_prob(DROPBLOCK_KEEP_PROB if mode == "train_dropblock" else 1.0)
    torch.manual_seed(2)
    logits = model(images)
    (logits * cotangent).sum().backward()
    assert images.grad is not None
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return {
        "logits": logits.detach(),
        "input_grad_norms": images.grad.norm(dim=(2, 3)),
        "input_grad_probes": (images.grad * probe).sum((2, 3)),
        "param_grad_norms": torch.stack([g.norm() for g in grads]),
    }


def modes(name: str) -> tuple[str, ...]:
    return MODES if has_dropblock(name) else MODES[:2]


def write_fixture() -> None:
    print(f"outputs of {Path(assembled_lightning.__file__).parent}")
    torch.set_num_threads(1)  # as the tests (tests/models/conftest.py): one reduction order
    fixture = {
        name: {mode: model_outputs(thin_model(name), mode) for mode in modes(name)}
        for name in list_models()
    }
    FIXTURE.parent.mkdir(exist_ok=True)
    torch.save(fixture, FIXTURE)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size / 1e3:.0f} kB, {len(fixture)} models)")


if __name__ == "__main__":
    write_fixture()
