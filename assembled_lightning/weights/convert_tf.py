"""Convert an official TF1 checkpoint of the original into a pretrained folder, with a parity
report: every tensor's crc32c is verified on reading, every mapped variable is compared with
what was written, and optionally the converted model's logits with golden TF logits, which
must agree within ``GOLDEN_TOLERANCE``. Structure that has no variables (a blur, a max-pool's
padding) is invisible in a checkpoint: the conversion warns about it unless golden logits
confirm it."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models import AssembleResNet, ResNetConfig, create_model, get_model_entry, list_models
from .categories import imagenet_categories
from .convert import is_model_variable, state_dict_from_tf, tf_variable_map
from .hub import WEIGHTS_FILE, read_safetensors
from .pretrained import save_pretrained
from .tf_checkpoint import TFCheckpointReader

_PREPROCESSING = {
    "assemble_resnet50": "imagenet_224_256",
    "assemble_resnet152": "imagenet_224_256a",
}
GOLDEN_TOLERANCE = 1e-4
"""Max |ours − golden| of the logits, relative to their scale: the tolerance is this times
max(1, max |golden|). The thin fixtures reach 6e-7 (and a float64 NumPy re-implementation 3e-7,
tf/MANIFEST.md); a wrong structural switch is off by ~1e-2 (the vanilla stem pool, ORIGINAL.md
§0)."""


@dataclass
class ConversionReport:
    """What the conversion did and how close the result is to the checkpoint."""

    checkpoint: str
    global_step: int | None
    model: str
    overrides: dict[str, Any]
    mapped: int
    ignored: dict[str, int]
    num_classes: int
    max_weight_diff: float
    max_logit_diff: float | None = None
    logit_tolerance: float | None = None
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"checkpoint      {self.checkpoint} (global_step {self.global_step})",
            f"model           {self.model} {self.overrides}",
            f"mapped          {self.mapped} TF variables → PyTorch tensors",
            "ignored         "
            + (", ".join(f"{n} {k}" for k, n in self.ignored.items() if n) or "nothing"),
            f"classes         {self.num_classes}",
            f"weights parity  max |written - checkpoint| = {self.max_weight_diff:.3g}",
        ]
        if self.max_logit_diff is not None:
            lines.append(
                f"logits parity   max |ours - golden TF| = {self.max_logit_diff:.3g} "
                f"(tolerance {self.logit_tolerance:.2e})"
            )
        lines += [f"note            {note}" for note in self.notes]
        return "\n".join(lines)


def infer_overrides(config: ResNetConfig, variables: dict[str, np.ndarray]) -> dict[str, Any]:
    """Structure the checkpoint's shapes reveal: classes, base width and BigLittleNet's α."""
    inferred: dict[str, Any] = {}
    dense = variables.get("resnet_model/dense/kernel")
    if dense is not None:
        inferred["num_classes"] = int(dense.shape[1])
        inferred["base_width"] = int(dense.shape[0]) // 32
    bl_stem = variables.get("resnet_model/stage0/pool/conv2d_1/kernel")
    if config.big_little and bl_stem is not None:
        inferred["bl_alpha"] = max(1, int(bl_stem.shape[2]) // int(bl_stem.shape[3]))
    return inferred


def resnet_config_of(model_name: str) -> ResNetConfig:
    """The registered config of ``model_name``; only the ResNet family has a TF layout."""
    config = get_model_entry(model_name).config
    if not isinstance(config, ResNetConfig):
        resnets = [n for n in list_models() if isinstance(get_model_entry(n).config, ResNetConfig)]
        raise ValueError(
            f"{model_name} has no TF checkpoint layout: the original code has no MobileNet "
            "(ORIGINAL.md §1.9), only the ResNet family converts. Pass --model one of: "
            + ", ".join(resnets)
        )
    return config


def check_model_variables(variables: dict[str, np.ndarray], checkpoint: Path) -> None:
    """Model variables are finite floats: NaN/inf or integers would convert to a broken model."""
    for name, array in variables.items():
        if array.dtype.kind != "f":
            raise ValueError(
                f"{checkpoint}: model variable {name} has dtype {array.dtype}, not a float type: "
                "this is not a checkpoint of the original's model"
            )
        if not np.isfinite(array).all():
            raise ValueError(
                f"{checkpoint}: model variable {name} holds NaN or inf values; the checkpoint "
                "was saved from a diverged run (or damaged before it was written)"
            )


def uses_stem_max_pool(config: ResNetConfig) -> bool:
    """The strided stem max-pool exists (not with BigLittleNet, nor with the 'max' blur)."""
    return not config.big_little and "max" not in config.anti_alias


def unconfirmed_structure(config: ResNetConfig) -> list[str]:
    """Switches of the model that no checkpoint variable shows; only logits can confirm them."""
    found = []
    if config.anti_alias:
        found.append(
            f"anti_alias={config.anti_alias} with filter size {config.anti_alias_filter_size} "
            "(a blur has no variables)"
        )
    if uses_stem_max_pool(config):
        found.append(
            f"stem_pool_padding={config.stem_pool_padding!r} (a max-pool has no variables)"
        )
    return found


def drop_background_class(model: AssembleResNet) -> None:
    """Turn the original's 1001-way head into a 1000-way one: class i = TF class i + 1."""
    fc = model.fc
    if not isinstance(fc, nn.Linear) or fc.out_features < 2:
        raise ValueError("the model has no multi-class head to drop a background logit from")
    weight, bias = fc.weight.detach()[1:].clone(), fc.bias.detach()[1:].clone()
    model.reset_classifier(fc.out_features - 1)
    new_fc = model.fc
    assert isinstance(new_fc, nn.Linear)
    with torch.no_grad():
        new_fc.weight.copy_(weight)
        new_fc.bias.copy_(bias)


def golden_logit_diff(
    model: nn.Module, golden_path: Path, dropped_background: bool
) -> tuple[float, float]:
    """Max |logits - golden| and its tolerance (``GOLDEN_TOLERANCE`` times the golden logits'
    scale) for a golden.npz with ``input_nhwc`` and 1001-way ``logits``."""
    with np.load(golden_path) as golden:
        if not {"input_nhwc", "logits"} <= set(golden.files):
            raise ValueError(
                f"golden file {golden_path} needs arrays 'input_nhwc' and 'logits' (TF eval "
                f"logits of those images); it has {sorted(golden.files)}"
            )
        inputs, expected = golden["input_nhwc"], golden["logits"]
    images = torch.from_numpy(inputs).float().permute(0, 3, 1, 2).contiguous()
    if dropped_background:
        expected = expected[:, 1:]
    with torch.no_grad():
        logits = model.eval()(images).numpy()
    if logits.shape != expected.shape:
        raise ValueError(
            f"golden logits in {golden_path} have shape {expected.shape}, the converted model "
            f"gives {logits.shape}: a golden file of another checkpoint or class count"
        )
    finite = np.abs(expected[np.isfinite(expected)])
    tolerance = GOLDEN_TOLERANCE * max(1.0, float(finite.max()) if finite.size else 1.0)
    return float(np.abs(logits - expected).max()), tolerance


def convert_tf_checkpoint(
    checkpoint: str | os.PathLike[str],
    model_name: str,
    out: str | os.PathLike[str],
    *,
    drop_background: bool = False,
    overrides: dict[str, Any] | None = None,
    preprocessing_type: str | None = None,
    golden: str | os.PathLike[str] | None = None,
) -> ConversionReport:
    """Read and checksum the checkpoint, map every model variable, check the golden logits if
    given, then write the folder and check that it holds exactly the checkpoint's values.

    A vanilla (non-BigLittleNet) model gets the original's TF 'SAME' stem pool
    (``stem_pool_padding='tf_same'``) unless ``overrides`` choose otherwise. Anything that fails
    raises before the folder is written (``ValueError`` / ``CorruptCheckpointError``).
    """
    registered = resnet_config_of(model_name)
    reader = TFCheckpointReader(checkpoint)  # verifies every tensor's crc32c
    variables = reader.read_all(is_model_variable)
    check_model_variables(variables, reader.prefix)
    overrides = dict(overrides or {})
    settings = {**infer_overrides(registered, variables), **overrides}
    notes: list[str] = []
    if uses_stem_max_pool(registered.replace(**settings)) and "stem_pool_padding" not in settings:
        settings["stem_pool_padding"] = "tf_same"
        notes.append(
            "stem_pool_padding='tf_same': the original's TF 'SAME' stem max-pool (ORIGINAL.md "
            "§0), chosen for every converted checkpoint; --set stem_pool_padding=... overrides"
        )
    model = create_model(model_name, **settings)
    assert isinstance(model, AssembleResNet)  # resnet_config_of checked the family
    config = model.config
    if uses_stem_max_pool(config) and config.stem_pool_padding != "tf_same":
        warnings.warn(
            f"stem_pool_padding={config.stem_pool_padding!r} differs from the original's TF "
            "'SAME' stem max-pool (padding only bottom/right, ORIGINAL.md §0): a checkpoint of "
            "the original needs stem_pool_padding='tf_same' (the logits are ~0.03 off otherwise)",
            UserWarning,
            stacklevel=2,
        )
    mapping = tf_variable_map(model)
    model.load_state_dict(state_dict_from_tf(model, variables), strict=True)
    if drop_background:
        drop_background_class(model)

    max_logit_diff = tolerance = None
    unconfirmed = unconfirmed_structure(config)
    if golden is not None:
        max_logit_diff, tolerance = golden_logit_diff(model, Path(golden), drop_background)
        if not max_logit_diff <= tolerance:  # NaN fails too
            unseen = "; ".join(unconfirmed)
            raise ValueError(
                f"the converted model's logits differ from the golden TF logits in {golden}: "
                f"max |ours - golden| = {max_logit_diff:.3g} (tolerance {tolerance:.2e} = "
                f"{GOLDEN_TOLERANCE:.0e} × max(1, max |golden|)). Nothing was written. Either "
                "the golden file belongs to another checkpoint, or the model's structure is "
                "not the checkpoint's: check --model and --set"
                + (f", above all what no variable shows: {unseen}" if unseen else "")
            )
        notes += [f"{item}: confirmed by the golden logits" for item in unconfirmed]
    elif unconfirmed:
        warnings.warn(
            f"{model_name}: the checkpoint cannot confirm {'; '.join(unconfirmed)}. Pass "
            "--golden with golden TF logits (a .npz with input_nhwc and logits) to check them.",
            UserWarning,
            stacklevel=2,
        )
        notes += [f"{item}: not confirmed (no --golden)" for item in unconfirmed]

    meta: dict[str, Any] = {
        "label_offset": 0 if drop_background else 1,
        "preprocessing_type": preprocessing_type or _PREPROCESSING.get(model_name, "imagenet"),
        "normalization": "original",
        "source": f"TF checkpoint {reader.prefix.name} (global_step {reader.global_step})",
        "license": "Apache-2.0 (clovaai/assembled-cnn)",
        "num_params": sum(p.numel() for p in model.parameters()),
        "description": f"{model_name} converted from the original TensorFlow checkpoint",
    }
    if model.config.num_classes in (1000, 1001):  # ImageNet (1001: the background class first)
        meta["categories"] = imagenet_categories(model.config.num_classes)
    folder = save_pretrained(model.eval(), out, architecture=model_name, meta=meta)
    written = read_safetensors(folder / WEIGHTS_FILE)
    max_diff = 0.0
    for key, variable in mapping.items():
        expected = variable.to_torch(variables[variable.name])
        if key.startswith("fc.") and drop_background:
            expected = expected[1:]
        max_diff = max(max_diff, float((written[key] - expected).abs().max()))
    if max_diff != 0.0:
        raise RuntimeError(
            f"{folder / WEIGHTS_FILE} does not hold the checkpoint's values (max |written - "
            f"checkpoint| = {max_diff:.3g}): the disk or the file system is failing; delete "
            "the folder and convert again"
        )
    names = reader.keys()
    return ConversionReport(
        checkpoint=str(reader.prefix),
        global_step=reader.global_step,
        model=model_name,
        overrides=settings,
        mapped=len(variables),
        ignored={
            "optimizer slots": sum(n.endswith("/Momentum") for n in names),
            "global_step": int("global_step" in names),
            "other": sum(
                not is_model_variable(n) and not n.endswith("/Momentum") and n != "global_step"
                for n in names
            ),
        },
        num_classes=model.config.num_classes,
        max_weight_diff=max_diff,
        max_logit_diff=max_logit_diff,
        logit_tolerance=tolerance,
        notes=notes,
    )
