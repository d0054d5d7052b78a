"""The released architecture (thin) under channels_last, torch.export and torch.compile."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from assembled_lightning.models import create_model


def thin_assemble_resnet50(**overrides: object) -> nn.Module:
    """Thin Assemble-ResNet-50 with random BN statistics and non-zero γ everywhere, so that every
    residual branch (SK, blur-pool, BigLittleNet merges) contributes to the logits."""
    torch.manual_seed(0)
    model = create_model("assemble_resnet50", num_classes=1001, base_width=8, **overrides)
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.normal_(0.0, 0.2)
                bn.running_mean.normal_(0.0, 0.2)
                bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return thin_assemble_resnet50()


def image(seed: int = 1) -> torch.Tensor:
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_channels_last_gives_the_same_logits(model: nn.Module) -> None:
    x = image()
    expected = model(x)
    assert expected.shape == (1, 1001) and expected.std() > 0.01
    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    assert channels_last.fc.weight.is_contiguous()
    conv = channels_last.layer1.merge[0].conv2.conv
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    out = channels_last(x.contiguous(memory_format=torch.channels_last))
    assert (out - expected).abs().max().item() <= 1e-5


def test_torch_export_matches_eager(model: nn.Module) -> None:
    program = torch.export.export(model, (image(),))
    exported = program.module()
    with torch.no_grad():
        for seed in (1, 2):  # a new input too: nothing was folded into constants
            x = image(seed)
            assert (exported(x) - model(x)).abs().max().item() <= 1e-5
    # The exported graph has no state outside the program's state dict and constants.
    assert set(model.state_dict()) <= set(program.state_dict) | set(program.constants)


@pytest.mark.slow
def test_torch_compile_matches_eager() -> None:
    """Inductor on CPU, every block kind with the fewest blocks BigLittleNet allows: the full
    depth took 42-107 s with a cold compile cache on the 2-core machine."""
    model = thin_assemble_resnet50(block_counts=(2, 2, 2, 1))
    torch._dynamo.reset()
    compiled = torch.compile(model)
    with torch.no_grad():
        for seed in (1, 2):
            x = image(seed)
            assert (compiled(x) - model(x)).abs().max().item() <= 1e-5


def test_dropblock_schedule_does_not_recompile_a_compiled_model() -> None:
    """keep_prob lives in a tensor buffer: changing it every step reuses the captured graph."""
    graphs: list[torch.fx.GraphModule] = []

    def counting_backend(graph: torch.fx.GraphModule, _inputs: list[torch.Tensor]):  # type: ignore[no-untyped-def]
        graphs.append(graph)
        return graph.forward

    torch._dynamo.reset()
    model = create_model(
        "assemble_resnet50", num_classes=10, base_width=8, block_counts=(2, 2, 2, 1)
    )
    model.train().set_dropblock_keep_prob(0.95)
    compiled = torch.compile(model, backend=counting_backend)
    x = torch.randn(2, 3, 64, 64)
    for keep_prob in (0.95, 0.9, 0.85):
        model.set_dropblock_keep_prob(keep_prob)
        compiled(x).sum().backward()
    assert len(graphs) == 1
    assert all(p.grad is not None for p in model.parameters())
