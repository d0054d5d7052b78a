"""The preprocessing sidecar: what a deployed model's caller must do to an image before the
exported graph sees it, written as JSON beside the exported file.

An exported graph takes normalised float ``[N, 3, crop, crop]``; the decode, resize, crop and
normalisation stay outside it (they depend on the runtime's image library). The sidecar names
each step with its numbers — shorter side, crop, interpolation, per-channel scale / mean / std —
and the class name of every output, so that a C++ or mobile caller needs nothing from Python.
It is read back only as data (``json``), checked field by field.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast, get_args

from ..data.transforms import (
    ORIGINAL_MEAN_RGB,
    TORCHVISION_MEAN_RGB,
    TORCHVISION_STD_RGB,
    EvalTransform,
    Interpolation,
    Normalization,
    eval_transform,
)
from ..models.registry import get_model_entry
from ..weights.checkpoint import CHECKPOINT_SUFFIXES, read_checkpoint
from ..weights.meta import weights_categories
from ..weights.pretrained import read_description, resolve_weights
from ..weights.registry import Weights, transforms_from_meta

SIDECAR_VERSION = 1


@dataclass(frozen=True)
class Preprocessing:
    """The eval preprocessing of a model, as numbers a runtime can apply.

    ``input = (pixels_0_255 * scale - mean) / std`` per RGB channel, after the shorter side is
    resized to ``resize`` and the centre ``crop`` × ``crop`` taken at offsets
    ``(side - crop) // 2``.
    """

    resize: int
    crop: int
    interpolation: Interpolation = "tf_legacy_bilinear"
    normalization: Normalization = "original"

    def __post_init__(self) -> None:
        EvalTransform(self.resize, self.crop, self.interpolation, self.normalization)  # checks

    @property
    def scale(self) -> float:
        return 1.0 if self.normalization == "original" else 1.0 / 255.0

    @property
    def mean(self) -> tuple[float, float, float]:
        return ORIGINAL_MEAN_RGB if self.normalization == "original" else TORCHVISION_MEAN_RGB

    @property
    def std(self) -> tuple[float, float, float]:
        return (1.0, 1.0, 1.0) if self.normalization == "original" else TORCHVISION_STD_RGB

    def transform(self) -> EvalTransform:
        """The same preprocessing in PyTorch (decoded uint8 tensor or PIL image → model input)."""
        return EvalTransform(self.resize, self.crop, self.interpolation, self.normalization)

    @classmethod
    def of(cls, transform: EvalTransform) -> Preprocessing:
        """The numbers of an eval transform (e.g. ``Weights.transforms()``)."""
        return cls(
            transform.resize,
            transform.crop,
            transform.interpolation,
            transform.normalize.normalization,
        )

    @classmethod
    def named(cls, eval_type: str, normalization: Normalization = "original") -> Preprocessing:
        """A named eval type of the original (``imagenet``, ``imagenet_224_256``, ...)."""
        return cls.of(eval_transform(eval_type, normalization))


@dataclass(frozen=True)
class Sidecar:
    """Everything written beside an exported file, as one JSON object."""

    model: str
    weights: str | None
    format: str
    preprocessing: Preprocessing
    categories: list[str] | None
    """One name per output, in output order; None where the weights name none."""
    input_shape: list[int | str]
    """``["batch", 3, crop, crop]``, or a fixed batch where the export fixed it."""
    parity: dict[str, Any] = field(default_factory=dict)
    """Max |exported − eager| on the check inputs and the tolerance it passed."""
    quantization: dict[str, Any] | None = None
    """Backend, calibration images, and agreement with FP32 on held-out images (int8 only)."""

    def to_json(self) -> dict[str, Any]:
        prep = self.preprocessing
        return {
            "version": SIDECAR_VERSION,
            "model": self.model,
            "weights": self.weights,
            "format": self.format,
            "input": {
                "name": "image",
                "dtype": "float32",
                "layout": "NCHW, RGB",
                "shape": self.input_shape,
            },
            "preprocessing": {
                **asdict(prep),
                "resize_rule": "shorter side to `resize`, aspect ratio kept; centre crop",
                "scale": prep.scale,
                "mean": list(prep.mean),
                "std": list(prep.std),
                "formula": "(rgb_uint8 * scale - mean) / std",
            },
            "categories": self.categories,
            "parity": self.parity,
            "quantization": self.quantization,
        }


def sidecar_path(exported: str | os.PathLike[str]) -> Path:
    """``model.onnx`` → ``model.json`` (``model.pt2`` → ``model.json``)."""
    return Path(exported).with_suffix(".json")


def write_sidecar(sidecar: Sidecar, exported: str | os.PathLike[str]) -> Path:
    path = sidecar_path(exported)
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text(json.dumps(sidecar.to_json(), indent=2, ensure_ascii=False) + "\n")
    temporary.replace(path)
    return path


def read_preprocessing(path: str | os.PathLike[str]) -> Preprocessing:
    """The preprocessing a sidecar JSON records, checked (a hand-edited file with a bad value
    fails here, naming the field)."""
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the preprocessing sidecar {path}: {error}") from error
    prep = content.get("preprocessing") if isinstance(content, dict) else None
    if not isinstance(prep, dict):
        raise ValueError(f"{path} has no 'preprocessing' object: is it an export sidecar?")
    values: dict[str, Any] = {
        name: prep.get(name) for name in ("resize", "crop", "interpolation", "normalization")
    }
    for name in ("resize", "crop"):
        if not isinstance(values[name], int) or isinstance(values[name], bool):
            raise ValueError(
                f"{path}: preprocessing.{name} must be an integer, got {values[name]!r}"
            )
    for name, allowed in (("interpolation", Interpolation), ("normalization", Normalization)):
        if values[name] not in get_args(allowed):
            raise ValueError(
                f"{path}: preprocessing.{name} must be one of {get_args(allowed)}, got "
                f"{values[name]!r}"
            )
    return Preprocessing(**values)


def weights_preprocessing(
    model: str, weights: Weights | str | os.PathLike[str] | None
) -> Preprocessing:
    """The eval preprocessing that ``weights`` were evaluated with: a registered entry's or a
    pretrained folder's meta; a ``fit`` checkpoint's DataModule (its ``eval_type`` and
    ``normalization``, or the side of in-memory images such as the quickstart's); for no
    weights, the paper's eval crop of the registered ``model``."""
    if weights is None:
        crop = get_model_entry(model).input_size
        return Preprocessing.named("imagenet" if crop == 224 else f"imagenet_{crop}")
    resolved = resolve_weights(model, weights)
    if isinstance(resolved, Weights):
        meta = resolved.meta
    elif resolved.suffix in CHECKPOINT_SUFFIXES:
        return checkpoint_preprocessing(resolved)
    else:
        folder = resolved if resolved.is_dir() else resolved.parent
        meta = read_description(folder)["meta"]
    return Preprocessing.of(cast(EvalTransform, transforms_from_meta(meta)))  # its defaults


def checkpoint_preprocessing(path: Path) -> Preprocessing:
    """What a ``fit`` checkpoint's DataModule evaluated with (Lightning keeps its
    hyper-parameters); a checkpoint without them gets the vanilla ``imagenet`` type."""
    data = read_checkpoint(path).get("datamodule_hyper_parameters") or {}
    normalization = data.get("normalization", "original")
    if "eval_type" in data:
        return Preprocessing.named(data["eval_type"], normalization)
    if isinstance(data.get("image_size"), int):  # in-memory images of that side: no resize
        side = data["image_size"]
        return Preprocessing(side, side, "tf_legacy_bilinear", normalization)
    return Preprocessing.named("imagenet", normalization)


def export_categories(
    model: str, weights: Weights | str | os.PathLike[str] | None, num_outputs: int
) -> list[str] | None:
    """The class names of the exported head; None when the weights name none or when the head
    was replaced (another number of outputs than the names)."""
    names = weights_categories(model, weights)
    return names if names is not None and len(names) == num_outputs else None
