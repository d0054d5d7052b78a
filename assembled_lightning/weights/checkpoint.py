"""Checkpoint files as weights: read a PyTorch / Lightning checkpoint safely and say which
architecture a ``fit`` checkpoint records.

A ``fit`` checkpoint's hyper-parameters name its model, classes and ``model_overrides``; a model
built from it must take that architecture, not the caller's defaults (a thin quickstart model
read into a full-width one fails on every tensor).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .hub import WeightsError

CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")
# the task's averaged weights first (those it evaluates with), then its trained ones, a DDP
# wrapper's and torch.compile's; a retrieval task's backbone sits inside its embedding network
_PREFIXES = ("ema.module.", "model.", "backbone.", "module.", "_orig_mod.")
MODEL_CLASSES_KEY = "model_num_classes"
"""Checkpoint entry of a task whose model's classifier is not ``num_classes`` wide (a retrieval
task's backbone has none: 0); absent, the model has ``num_classes`` outputs."""


@dataclass(frozen=True)
class TaskArchitecture:
    """The model a ``fit`` checkpoint was trained as: its task's hyper-parameters."""

    model: str
    num_classes: int
    model_overrides: dict[str, Any]


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file's content, read with ``weights_only=True`` (no code runs) and
    memory-mapped where the format allows, so that reading only its hyper-parameters is cheap."""
    # a DataModule's hyper-parameters may hold paths; rebuilding one runs no code
    paths: list[Any] = [pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePosixPath]
    paths.append(pathlib.PureWindowsPath)
    if hasattr(torch.serialization, "safe_globals"):
        allowed: Any = torch.serialization.safe_globals(paths)
    else:  # torch 2.4 has only the process-wide list
        torch.serialization.add_safe_globals(paths)
        allowed = contextlib.nullcontext()
    try:
        with allowed:
            content = torch.load(
                path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
            )
    except Exception as error:  # torch raises several types for damaged or foreign files
        raise WeightsError(
            f"cannot read checkpoint {path}: {error}. A truncated or damaged file: copy or save "
            "it again"
        ) from error
    if not isinstance(content, dict):
        raise WeightsError(f"{path} holds no state dict")
    return content


def task_architecture(content: dict[str, Any], path: Path) -> TaskArchitecture | None:
    """The architecture a checkpoint's hyper-parameters record; None for a plain state dict (or
    a checkpoint of a task without a registered ``model`` name)."""
    hparams = content.get("hyper_parameters")
    if not isinstance(hparams, dict) or not isinstance(hparams.get("model"), str):
        return None
    num_classes = content.get(MODEL_CLASSES_KEY, hparams.get("num_classes"))
    overrides = hparams.get("model_overrides") or {}
    if not isinstance(num_classes, int) or not isinstance(overrides, dict):
        raise WeightsError(
            f"{path}: hyper-parameters num_classes ({num_classes!r}) must be an integer and "
            f"model_overrides ({overrides!r}) a mapping"
        )
    return TaskArchitecture(hparams["model"], num_classes, dict(overrides))


def checkpoint_architecture(weights: str | os.PathLike[str] | None) -> TaskArchitecture | None:
    """What ``weights`` records if it is a ``fit`` checkpoint file; None for anything else (no
    weights, a registered name, a pretrained folder, a plain state dict)."""
    if weights is None:
        return None
    path = Path(weights)
    if path.suffix not in CHECKPOINT_SUFFIXES or not path.is_file():
        return None
    return task_architecture(read_checkpoint(path), path)


def model_architecture(
    model: str, weights: str | os.PathLike[str] | None, overrides: dict[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """The model name and config overrides to build for ``weights``: a ``fit`` checkpoint's own,
    with ``overrides`` applied over its ``model_overrides``; otherwise ``model`` and
    ``overrides`` as given."""
    architecture = checkpoint_architecture(weights)
    if architecture is None:
        return model, dict(overrides or {})
    return architecture.model, {**architecture.model_overrides, **(overrides or {})}


def model_state(content: dict[str, Any], own_keys: set[str]) -> dict[str, torch.Tensor]:
    """The model's tensors in a checkpoint's content: the averaged (EMA) weights when the task
    kept them (those it evaluates with), else the trained ones, without the task's ``model.``
    prefix (or a DDP ``module.`` / ``torch.compile`` one); a plain state dict as it is."""
    state = content.get("state_dict", content)
    if not isinstance(state, dict):
        raise WeightsError("the checkpoint holds no state dict")
    for prefix in _PREFIXES:
        if not own_keys & set(state) and any(key.startswith(prefix) for key in state):
            state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    return state
