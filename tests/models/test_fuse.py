"""``fuse_for_inference``: every BN folded into its conv, the same logits (fp32, ≤ 1e-5) for every
registered model, an untouched input model, and a fused model that still exports."""

from __future__ import annotations

import copy

import pytest
import torch
from eager_outputs import IMAGE_SHAPE, thin_model
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

import assembled_lightning
from assembled_lightning.models import fuse_for_inference, list_models

TOLERANCE = 1e-5


def images(seed: int = 1) -> torch.Tensor:
    return torch.randn(IMAGE_SHAPE, generator=torch.Generator().manual_seed(seed))


def batch_norms(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


@pytest.mark.parametrize("name", list_models())
def test_fused_model_has_no_batch_norm_and_the_same_logits(name: str) -> None:
    model = thin_model(name).train()  # random BN statistics, γ and β (eager_outputs.py)
    before = copy.deepcopy(model.state_dict())
    fused = fuse_for_inference(model)

    assert not batch_norms(fused)  # every BN of these models follows a conv
    assert not fused.training
    assert model.training and batch_norms(model)  # the input model is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    x = images()
    with torch.no_grad():
        expected = model.eval()(x)
        assert expected.std() > 0.01
        assert (fused(x) - expected).abs().max().item() <= TOLERANCE

    exported = torch.export.export(fused, (x,)).module()
    with torch.no_grad():
        x = images(seed=2)  # a new input: nothing was folded into constants
        assert (exported(x) - fused(x)).abs().max().item() <= TOLERANCE


def test_folding_is_torchvisions_fuse_conv_bn_eval() -> None:
    """A conv directly followed by a BN in a Sequential, checked against torch's own fusion."""
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6)
    assert bn.running_mean is not None and bn.running_var is not None
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 1.5)
    reference = fuse_conv_bn_eval(conv.eval(), bn.eval())
    fused = fuse_for_inference(nn.Sequential(conv, bn))
    assert isinstance(fused, nn.Sequential) and isinstance(fused[1], nn.Identity)
    torch.testing.assert_close(fused[0].weight, reference.weight)
    torch.testing.assert_close(fused[0].bias, reference.bias)


def test_inplace_fuses_the_model_itself_and_fusing_twice_changes_nothing() -> None:
    model = thin_model("assemble_resnet50")
    fused = fuse_for_inference(model, inplace=True)
    assert fused is model and not batch_norms(model)
    state = copy.deepcopy(fused.state_dict())
    again = fuse_for_inference(fused)
    assert all(torch.equal(state[k], v) for k, v in again.state_dict().items())


def test_fuse_for_inference_is_exported_next_to_create_model() -> None:
    assert assembled_lightning.fuse_for_inference is fuse_for_inference
    assert "fuse_for_inference" in assembled_lightning.__all__
