"""Pretrained models: strict loading, ``save_pretrained`` / ``from_pretrained`` and the builder
behind ``hubconf.py`` (torchvision's ``weights=`` convention).

A pretrained folder (local or a Hugging Face repo) holds ``model.safetensors``, ``config.json``
(the model family, every config field and the weights' meta) and a ``README.md`` model card.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import save_file
from torch import nn

from ..models import (
    AssembleResNet,
    Backbone,
    MobileNetConfig,
    MobileNetV1,
    MultiScaleFeatures,
    ResNetConfig,
    create_model,
)
from .categories import category_list, check_categories
from .checkpoint import CHECKPOINT_SUFFIXES, model_state, read_checkpoint, task_architecture
from .hub import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    WeightsError,
    download_file,
    fetch_weights_file,
    read_safetensors,
)
from .registry import DEFAULT_WEIGHTS, WEIGHTS, Weights, get_weights

_FAMILIES: dict[str, tuple[type, type[nn.Module]]] = {
    "resnet": (ResNetConfig, AssembleResNet),
    "mobilenet": (MobileNetConfig, MobileNetV1),
}
_HEAD_KEYS = ("fc.weight", "fc.bias")


def load_pretrained_state(
    model: nn.Module, state: dict[str, torch.Tensor], *, source: str = "weights"
) -> None:
    """Load ``state`` strictly; only the classifier may differ (it is then left as initialised).

    Any other missing, unexpected or mis-shaped key raises a ``WeightsError`` listing them all.
    """
    own = model.state_dict()
    head_differs = any(
        key in state and key in own and state[key].shape != own[key].shape for key in _HEAD_KEYS
    )
    skip = set(_HEAD_KEYS) if head_differs or not any(k in own for k in _HEAD_KEYS) else set()
    missing = sorted(k for k in own if k not in state and k not in skip)
    unexpected = sorted(k for k in state if k not in own and k not in skip)
    mismatched = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in state
        if k in own and k not in skip and state[k].shape != own[k].shape
    )
    # load_state_dict would cast an int64 or bool tensor into a float parameter without a word
    wrong_dtype = sorted(
        f"{k}: file {str(state[k].dtype).removeprefix('torch.')} vs model "
        f"{str(own[k].dtype).removeprefix('torch.')}"
        for k in state
        if k in own and state[k].is_floating_point() != own[k].is_floating_point()
    )
    if missing or unexpected or mismatched or wrong_dtype:
        lines = [f"{source} do not fit this model:"]
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", mismatched),
            ("dtype mismatch (float vs integer/bool: damaged, or not a weights file)", wrong_dtype),
        ):
            if keys:
                lines.append(f"  {len(keys)} {label}: {', '.join(keys[:12])}")
        if missing or unexpected or mismatched:
            lines.append("Check the model name and its overrides (base_width, depth, ...).")
        else:
            lines.append("Save or convert the weights again from their source.")
        raise WeightsError("\n".join(lines))
    model.load_state_dict({k: v for k, v in state.items() if k not in skip}, strict=not skip)


def model_family(model: nn.Module) -> str:
    for family, (_, model_class) in _FAMILIES.items():
        if isinstance(model, model_class):
            return family
    raise TypeError(f"save_pretrained supports the package's models, not {type(model).__name__}")


def save_pretrained(
    model: nn.Module,
    folder: str | os.PathLike[str],
    *,
    architecture: str | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``model.safetensors``, ``config.json`` and a ``README.md`` model card to ``folder``.

    ``meta`` (label_offset, preprocessing_type, normalization, categories: one class name per
    output, ...) is kept in ``config.json`` and read back by :func:`read_description`."""
    family = model_family(model)
    config = cast(Backbone, model).config
    categories = (meta or {}).get("categories")
    if categories is not None:
        names = category_list(categories, "meta['categories']")
        check_categories(names, config.num_classes, "meta['categories']")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    description = {
        "architecture": architecture,
        "family": family,
        "config": dataclasses.asdict(config),
        "meta": {"num_classes": config.num_classes, **(meta or {})},
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / CONFIG_FILE).write_text(json.dumps(description, indent=2) + "\n")
    (folder / "README.md").write_text(model_card(description))
    return folder


def model_card(description: dict[str, Any]) -> str:
    """A Hugging Face model card generated from ``config.json``'s content."""
    meta = description["meta"]
    name = description["architecture"] or description["family"]
    metrics = meta.get("metrics", {})
    lines = [
        "---",
        "library_name: assembled-lightning",
        f"license: {str(meta.get('license', 'apache-2.0')).split()[0].lower()}",
        "tags: [image-classification, assembled-cnn, pytorch]",
        "---",
        f"# {name}",
        "",
        meta.get("description", f"{name} weights for assembled-lightning."),
        "",
        "```python",
        "from assembled_lightning.weights import from_pretrained",
        'model = from_pretrained("<this folder or repo id>").eval()',
        "```",
        "",
        f"- classes: {meta['num_classes']} (label offset {meta.get('label_offset', 0)})",
        f"- eval preprocessing: `{meta.get('preprocessing_type', 'imagenet')}`, normalisation "
        f"`{meta.get('normalization', 'original')}`",
        f"- source: {meta.get('source', 'trained with assembled-lightning')}",
        f"- licence: {meta.get('license', 'Apache-2.0')}",
    ]
    if metrics:
        lines += ["", "| metric | value (paper) |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in metrics.items()]
    return "\n".join(lines) + "\n"


_DESCRIPTION_KEYS = {"architecture", "family", "config", "meta"}


def read_pretrained_folder(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``config.json`` (checked: see ``check_description``) and the tensors of a folder."""
    return read_description(folder), read_safetensors(folder / WEIGHTS_FILE)


def read_description(folder: Path) -> dict[str, Any]:
    """A pretrained folder's ``config.json``, checked (``check_description``), without reading
    its tensors: the architecture, the config and the meta its writer kept."""
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise WeightsError(
            f"{folder} has no {CONFIG_FILE}: a pretrained folder is written by "
            "`assembled-lightning convert-tf` or `save_pretrained`"
        )
    try:
        description = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WeightsError(
            f"{config_path} is not valid JSON ({error}); write the folder again with "
            "`save_pretrained` or `assembled-lightning convert-tf`"
        ) from error
    check_description(description, config_path)
    return cast(dict[str, Any], description)


def check_description(description: Any, path: Path) -> None:
    """A ``config.json`` holds exactly what ``save_pretrained`` writes, with valid config values:
    an unknown key (a typo, or a newer writer's field) would otherwise be dropped silently."""

    def fail(problem: str) -> WeightsError:
        return WeightsError(f"{path}: {problem}")

    if not isinstance(description, dict):
        raise fail(f"expected a JSON object with keys {sorted(_DESCRIPTION_KEYS)}")
    unknown = sorted(set(description) - _DESCRIPTION_KEYS)
    if unknown:
        raise fail(f"unknown key(s) {unknown}; allowed: {sorted(_DESCRIPTION_KEYS)}")
    family = description.get("family")
    if family not in _FAMILIES:
        raise fail(f"unknown model family {family!r}; known: {sorted(_FAMILIES)}")
    values = description.get("config")
    if not isinstance(values, dict):
        raise fail("'config' must be an object of config fields")
    config_class = _FAMILIES[family][0]
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise fail(f"unknown {config_class.__name__} field(s) {unknown}; allowed: {sorted(fields)}")
    meta = description.get("meta", {})
    if not isinstance(meta, dict):
        raise fail("'meta' must be an object")
    try:
        config = config_class().replace(**values)
        if meta.get("categories") is not None:
            names = category_list(meta["categories"], "meta 'categories'")
            check_categories(names, config.num_classes, "meta 'categories'")
    except (TypeError, ValueError) as error:
        raise fail(str(error)) from error


def model_from_description(description: dict[str, Any], **overrides: Any) -> nn.Module:
    """The model a checked ``config.json`` describes, with the caller's config overrides."""
    config_class, model_class = _FAMILIES[description["family"]]
    config = config_class().replace(**{**description["config"], **overrides})
    return model_class(config)


_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def looks_like_a_path(source: str | os.PathLike[str]) -> bool:
    """A folder the user means (absolute, ./, ../, ~, a Path, two or more '/') rather than a
    Hugging Face repo id (``owner/name``)."""
    text = os.fspath(source)
    return (
        not isinstance(source, str)
        or text.startswith(("/", ".", "~"))
        or text.count("/") > 1
        or "\\" in text
        or Path(text).exists()
    )


def from_pretrained(
    source: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> nn.Module:
    """A model from a pretrained folder or Hugging Face repo id; ``num_classes`` swaps the head."""
    folder = Path(source).expanduser()
    if not folder.is_dir():
        if looks_like_a_path(source):
            problem = "is a file, not a folder" if folder.exists() else "does not exist"
            raise WeightsError(
                f"pretrained folder {os.fspath(source)} {problem}. Pass a folder written by "
                "`save_pretrained` or `assembled-lightning convert-tf` (config.json + "
                "model.safetensors), or a Hugging Face repo id 'owner/name'"
            )
        if not _REPO_ID.fullmatch(str(source)):
            raise WeightsError(
                f"{source!r} is not a folder, and not a Hugging Face repo id of the form "
                "owner/name; pass a folder written by `save_pretrained` or "
                "`assembled-lightning convert-tf`"
            )
        config_path = download_file(str(source), CONFIG_FILE, revision, cache_dir)
        download_file(str(source), WEIGHTS_FILE, revision, cache_dir)
        folder = config_path.parent
    description, state = read_pretrained_folder(folder)
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    model = model_from_description(description, **overrides)
    load_pretrained_state(model, state, source=f"weights in {folder}")
    return model


def model_from_checkpoint(path: Path, name: str, **kwargs: Any) -> nn.Module:
    """Model ``name`` loaded from a checkpoint file (``.ckpt``, ``.pt``, ``.pth``).

    A ``fit`` checkpoint brings its architecture: ``kwargs`` apply over its ``model_overrides``
    (a switch without tensors, such as ``dropblock``, may change for fine-tuning), and
    ``num_classes`` defaults to its own (another count builds a fresh head). It gives its EMA
    weights when it kept them, those it evaluates with. A plain state dict is loaded into
    ``name`` built with ``kwargs``.
    """
    content = read_checkpoint(path)
    architecture = task_architecture(content, path)
    given = dict(kwargs)
    if architecture is not None:
        if architecture.model != name:
            raise WeightsError(
                f"{path} is a checkpoint of {architecture.model}, not {name}; build "
                f"{architecture.model} from it"
            )
        kwargs = {"num_classes": architecture.num_classes, **architecture.model_overrides, **kwargs}
    # a backbone saved without classifier (a retrieval task's) loads as it is, then gets a head
    new_head = architecture is not None and architecture.num_classes == 0
    model = create_model(name, **{**kwargs, "num_classes": 0} if new_head else kwargs)
    state = model_state(content, set(model.state_dict()))
    try:
        load_pretrained_state(model, state, source=f"checkpoint {path}")
    except WeightsError as error:
        if architecture is None:
            raise
        recorded = architecture.model_overrides
        given_over = {
            key: value
            for key, value in given.items()
            if key != "num_classes" and (key not in recorded or recorded[key] != value)
        }
        if not given_over:
            raise
        raise WeightsError(
            f"model_overrides {given_over}, given over those recorded in {path} "
            f"({architecture.model} with model_overrides {recorded}), make a model its tensors "
            "do not fit: leave out the ones that change the architecture (base_width, "
            f"block_counts, ...) to fine-tune from it.\n{error}"
        ) from error
    if new_head and kwargs["num_classes"] and isinstance(model, Backbone):
        model.reset_classifier(kwargs["num_classes"])
    return model


def resolve_weights(model_name: str, weights: Weights | str | os.PathLike[str]) -> Weights | Path:
    """``weights=`` as torchvision: an entry, its name, ``"DEFAULT"``, a local pretrained folder,
    or a checkpoint file (``.ckpt``/``.pt``/``.pth``)."""
    if isinstance(weights, Weights):
        return weights
    text = str(weights)
    if text == "DEFAULT":
        if model_name not in DEFAULT_WEIGHTS:
            raise WeightsError(f"{model_name} has no published weights; use weights=None")
        return WEIGHTS[DEFAULT_WEIGHTS[model_name]]
    path = Path(text)
    if text not in WEIGHTS and path.exists():
        return path
    if path.suffix in CHECKPOINT_SUFFIXES:
        raise WeightsError(f"checkpoint {path} does not exist (working folder: {Path.cwd()})")
    return get_weights(text)


def build_model(
    name: str,
    *,
    weights: Weights | str | os.PathLike[str] | None = None,
    pretrained: bool | None = None,
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build registered model ``name``, optionally with pretrained weights (torchvision style).

    ``pretrained=True`` is accepted with a deprecation warning and means ``weights="DEFAULT"``.
    With weights, ``num_classes`` different from the weights' builds a fresh head for
    fine-tuning and loads everything else; a ``fit`` checkpoint's recorded architecture is the
    base that ``kwargs`` apply over (``model_from_checkpoint``). ``progress`` is kept for
    torchvision compatibility; huggingface_hub shows its own progress bar.
    """
    del progress
    if pretrained is not None:
        warnings.warn(
            "pretrained= is deprecated; use weights='DEFAULT' (or a weights name/folder)",
            DeprecationWarning,
            stacklevel=3,
        )
        if pretrained and weights is None:
            weights = "DEFAULT"
    if weights is None:
        return create_model(name, **kwargs)
    if kwargs.pop("features_only", False):  # load the classifier's weights, then prune it
        out_indices = kwargs.pop("out_indices", None)
        model = build_model(name, weights=weights, cache_dir=cache_dir, **kwargs)
        if not isinstance(model, Backbone):
            raise TypeError(f"{name} has no feature maps (features_only needs a Backbone)")
        return MultiScaleFeatures(model, out_indices)
    resolved = resolve_weights(name, weights)
    if isinstance(resolved, Path) and resolved.suffix in CHECKPOINT_SUFFIXES:
        return model_from_checkpoint(resolved, name, **kwargs)
    if isinstance(resolved, Path):
        folder = resolved if resolved.is_dir() else resolved.parent
        description, state = read_pretrained_folder(folder)
        if description.get("architecture") not in (None, name):
            raise WeightsError(
                f"weights in {folder} are for {description['architecture']}, not {name}"
            )
        model = model_from_description(description, **kwargs)
        load_pretrained_state(model, state, source=f"weights in {folder}")
        return model
    if resolved.model != name:
        raise WeightsError(f"weights {resolved.name} are for {resolved.model}, not {name}")
    kwargs.setdefault("num_classes", resolved.num_classes)
    state = read_safetensors(fetch_weights_file(resolved, cache_dir))
    model = create_model(name, **{**resolved.config_overrides, **kwargs})
    load_pretrained_state(model, state, source=f"weights {resolved.name}")
    return model


def model_from_task_checkpoint(
    path: str | os.PathLike[str], num_classes: int | None = None, **overrides: Any
) -> nn.Module:
    """The model a ``fit`` checkpoint (Lightning ``.ckpt`` of a task) evaluates with: its
    architecture and classes, its averaged (EMA) weights when it kept them (see
    ``model_from_checkpoint``). Read with ``weights_only=True``: no code runs."""
    path = Path(path)
    architecture = task_architecture(read_checkpoint(path), path)
    if architecture is None:
        raise WeightsError(
            f"{path} is not a checkpoint of `assembled-lightning fit` (no hyper-parameters "
            "model and num_classes): pass --teacher MODEL_NAME --teacher-weights "
            f"{path} (plus --num-classes) instead"
        )
    if num_classes is not None and num_classes != architecture.num_classes:
        raise WeightsError(
            f"--num-classes {num_classes} contradicts {path}, whose model has "
            f"{architecture.num_classes} classes; leave --num-classes out"
        )
    return model_from_checkpoint(path, architecture.model, **overrides)
