"""Our models reproduce the original TensorFlow graphs: names, shapes and golden logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from assembled_lightning import create_model
from assembled_lightning.weights import state_dict_from_tf, tf_variable_map

GOLDEN_CASES = {
    # fixture folder: (registry name, overrides that reproduce the fixture's graph)
    "assemble_r50_thin": ("assemble_resnet50", {}),
    "vanilla_r50_thin": ("resnet50", {"stem_pool_padding": "tf_same"}),
}


def read_variable_list(path: Path) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape, _ = line.split("\t")
        shapes[name] = tuple(int(d) for d in shape.strip("[]").split(",") if d.strip())
    return shapes


def tf_shape(layout: str, shape: torch.Size) -> tuple[int, ...]:
    if layout == "conv":
        out_channels, in_channels, height, width = shape
        return (height, width, in_channels, out_channels)
    if layout == "dense_kernel":
        return (shape[1], shape[0])
    return tuple(shape)


@pytest.mark.parametrize(
    ("listing", "model_name"),
    [
        ("tf_variables_r50_master.txt", "assemble_resnet50"),
        ("tf_variables_r152_master.txt", "assemble_resnet152"),
    ],
)
def test_full_size_models_map_onto_every_original_variable(
    reference_dir: Path, listing: str, model_name: str
) -> None:
    """Names and shapes only: built on the meta device (no memory, no initialisation; the R152
    has 117 M values)."""
    expected = read_variable_list(reference_dir / listing)
    with torch.device("meta"):
        model = create_model(model_name, num_classes=1001)
    state = model.state_dict()
    mapping = tf_variable_map(model)
    ours = {v.name: tf_shape(v.layout, state[k].shape) for k, v in mapping.items()}
    assert ours == expected
    unmapped = [k for k in state if k not in mapping and not k.endswith("num_batches_tracked")]
    assert unmapped == []


@pytest.mark.parametrize("folder", sorted(GOLDEN_CASES))
def test_thin_models_reproduce_golden_tf_logits(reference_dir: Path, folder: str) -> None:
    model_name, overrides = GOLDEN_CASES[folder]
    fixture = reference_dir / "tf" / folder
    variables = dict(np.load(fixture / "variables.npz"))
    golden = np.load(fixture / "golden.npz")
    model = create_model(model_name, num_classes=1001, base_width=8, **overrides).eval()
    model.load_state_dict(state_dict_from_tf(model, variables), strict=True)
    images = torch.from_numpy(golden["input_nhwc"]).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        logits = model(images).numpy()
    assert np.abs(logits - golden["logits"]).max() <= 1e-4


def test_symmetric_stem_pool_does_not_reproduce_the_vanilla_graph(reference_dir: Path) -> None:
    """The original's TF-'SAME' max-pool pads bottom/right only; torchvision's pads both sides."""
    fixture = reference_dir / "tf" / "vanilla_r50_thin"
    variables = dict(np.load(fixture / "variables.npz"))
    golden = np.load(fixture / "golden.npz")
    model = create_model("resnet50", num_classes=1001, base_width=8).eval()
    model.load_state_dict(state_dict_from_tf(model, variables))
    images = torch.from_numpy(golden["input_nhwc"]).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        logits = model(images).numpy()
    assert np.abs(logits - golden["logits"]).max() > 1e-2


def test_mismatched_configuration_names_the_problem(reference_dir: Path) -> None:
    variables = dict(np.load(reference_dir / "tf" / "assemble_r50_thin" / "variables.npz"))
    wrong_width = create_model("assemble_resnet50", num_classes=1001, base_width=16)
    with pytest.raises(ValueError, match="shape mismatch"):
        state_dict_from_tf(wrong_width, variables)
    wrong_architecture = create_model("resnet50", num_classes=1001, base_width=8)
    with pytest.raises(ValueError, match="missing from the checkpoint"):
        state_dict_from_tf(wrong_architecture, variables)
    del variables["resnet_model/stage4/conv2d_9/kernel"]
    model = create_model("assemble_resnet50", num_classes=1001, base_width=8)
    with pytest.raises(ValueError, match=r"stage4/conv2d_9/kernel"):
        state_dict_from_tf(model, variables)
