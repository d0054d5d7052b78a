"""Loading weights is strict about missing tensors, also when fine-tuning with a new head.

A fine-tune replaces the classifier, so the loader may skip ``fc.*``; a file that lacks any
other tensor must still be refused, naming it, or the run would silently start from partly
random weights. Every way of passing weights is checked: a pretrained folder (``build_model``
and ``from_pretrained``), a plain state-dict file and a Lightning checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from assembled_lightning import create_model
from assembled_lightning.weights import WeightsError, build_model, from_pretrained, save_pretrained

THIN = {"base_width": 8}
DROPPED = ["layer2.0.conv1.weight", "layer3.1.bn2.running_var"]  # a weight and a statistic


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    """The same 5-class resnet18 without two of its tensors, in each file format."""
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=5, **THIN)
    folder = save_pretrained(model, tmp_path / "folder", architecture="resnet18")
    state = {k: v for k, v in model.state_dict().items() if k not in DROPPED}
    assert len(state) == len(model.state_dict()) - 2
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    torch.save(state, tmp_path / "plain.pt")
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}}, tmp_path / "run.ckpt")
    return {"folder": folder, "plain": tmp_path / "plain.pt", "lightning": tmp_path / "run.ckpt"}


@pytest.mark.parametrize("num_classes", [5, 3], ids=["same-head", "fine-tune-new-head"])
@pytest.mark.parametrize("kind", ["folder", "plain", "lightning"])
def test_weights_missing_a_tensor_are_refused(
    sources: dict[str, Path], kind: str, num_classes: int
) -> None:
    with pytest.raises(WeightsError, match="2 missing") as error:
        build_model("resnet18", weights=str(sources[kind]), num_classes=num_classes, **THIN)
    for key in DROPPED:
        assert key in str(error.value)
    if kind == "folder":
        with pytest.raises(WeightsError, match="2 missing"):
            from_pretrained(sources[kind], num_classes=num_classes)


def test_a_complete_file_still_fine_tunes(tmp_path: Path) -> None:
    """The control: with nothing missing, a new head is built and every other tensor loads."""
    torch.manual_seed(0)
    source = create_model("resnet18", num_classes=5, **THIN)
    torch.save(source.state_dict(), tmp_path / "plain.pt")
    model = build_model("resnet18", weights=str(tmp_path / "plain.pt"), num_classes=3, **THIN)
    assert model.fc.out_features == 3
    expected = source.state_dict()
    for key, value in model.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(value, expected[key]), key
