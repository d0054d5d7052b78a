"""A pretrained folder is read strictly (issue #10, item 5): ``config.json`` with unknown keys,
bad values or broken JSON, and weights of a non-floating dtype, are refused with the file name."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from assembled_lightning import create_model
from assembled_lightning.weights import WeightsError, build_model, from_pretrained, save_pretrained


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=4, base_width=8)
    return save_pretrained(model, tmp_path / "thin", architecture="resnet18")


def edit_config(folder: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    path = folder / "config.json"
    description = json.loads(path.read_text())
    change(description)
    path.write_text(json.dumps(description))
    return path


def test_the_fixture_folder_loads(folder: Path) -> None:
    assert from_pretrained(folder).state_dict()["fc.weight"].shape == (4, 64)


def test_unknown_config_keys_are_named(folder: Path) -> None:
    path = edit_config(folder, lambda d: d["config"].update(dropblok=True, stem_typ="deep"))
    with pytest.raises(WeightsError) as info:
        from_pretrained(folder)
    message = str(info.value)
    assert str(path) in message and "'dropblok'" in message and "'stem_typ'" in message


def test_unknown_top_level_keys_are_named(folder: Path) -> None:
    path = edit_config(folder, lambda d: d.update(configs={}))
    with pytest.raises(WeightsError, match=rf"{path}.*'configs'"):
        from_pretrained(folder)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("bn_eps", -1, r"bn_eps must be .*> 0"), ("stem", "Deep", r"stem .*'Deep'")],
)
def test_bad_config_values_are_refused_with_the_file_name(
    folder: Path, key: str, value: Any, message: str
) -> None:
    path = edit_config(folder, lambda d: d["config"].update({key: value}))
    with pytest.raises(WeightsError, match=rf"{path}.*{message}"):
        from_pretrained(folder)
    with pytest.raises(WeightsError, match=message):
        build_model("resnet18", weights=str(folder))


def test_broken_json_names_the_file(folder: Path) -> None:
    path = folder / "config.json"
    path.write_text(path.read_text()[:-20])
    with pytest.raises(WeightsError, match=rf"{path} is not valid JSON .*line"):
        from_pretrained(folder)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.int32])
def test_weights_of_a_non_floating_dtype_are_refused(folder: Path, dtype: torch.dtype) -> None:
    path = folder / "model.safetensors"
    state = load_file(str(path))
    state["conv1.weight"] = state["conv1.weight"].to(dtype)
    save_file(state, str(path))
    with pytest.raises(WeightsError, match=rf"conv1\.weight.*{str(dtype).split('.')[-1]}"):
        from_pretrained(folder)


def test_the_integer_batch_counter_still_loads(folder: Path) -> None:
    """BatchNorm's ``num_batches_tracked`` is int64 in the model too: not a dtype mismatch."""
    state = load_file(str(folder / "model.safetensors"))
    assert state["bn1.num_batches_tracked"].dtype == torch.int64
    from_pretrained(folder)
