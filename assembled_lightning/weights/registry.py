"""Pretrained-weight entries in the style of torchvision's ``Weights`` enums.

An entry says where a file lives (Hugging Face repo, file, pinned revision, sha256), which
registered model and config it fits, and what a user needs to use it: the eval transform, the
label offset of the original's 1001-way head, the class names of the outputs (torchvision's
ImageNet list), the paper's metrics, size and licence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..data.transforms import eval_transform
from .categories import imagenet_categories

_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Weights:
    """One set of pretrained weights for a registered model."""

    name: str
    """``<model>.<tag>``, e.g. ``assemble_resnet50.tf_in1k``."""
    model: str
    """The registered model name these weights fit (``create_model`` name)."""
    hf_repo: str
    filename: str = "model.safetensors"
    revision: str = "main"
    """The commit (40 hex digits) the file is read at; required for a hosted entry, since a
    branch name would follow whatever the repository holds next."""
    sha256: str | None = None
    """Checksum of ``filename`` (64 hex digits), verified after every download; required for a
    hosted entry."""
    config_overrides: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    """num_classes, label_offset, categories (one class name per output), preprocessing_type,
    normalization, metrics (the paper's), num_params, gmacs (multiply-adds at eval_size,
    torch.utils.flop_counter), source, licence, hosted (whether the file has been uploaded; an
    entry that does not say is hosted)."""

    def __post_init__(self) -> None:
        if not self.hosted:
            return  # a placeholder: refused before any download (hub.fetch_weights_file)
        if not _COMMIT.fullmatch(self.revision):
            raise ValueError(
                f"weights {self.name}: revision {self.revision!r} is not a 40-hex-digit commit; a "
                "hosted entry must pin the commit of the upload its sha256 was taken from (a "
                "branch such as 'main' can move), or set meta['hosted'] = False"
            )
        if self.sha256 is None or not _SHA256.fullmatch(self.sha256):
            raise ValueError(
                f"weights {self.name}: sha256 {self.sha256!r} is not 64 hex digits; a hosted "
                f"entry must give the checksum of {self.filename} (e.g. `sha256sum "
                f"{self.filename}` of the uploaded file), or set meta['hosted'] = False"
            )

    @property
    def hosted(self) -> bool:
        """Whether the file is published; unhosted entries are refused before any download."""
        return bool(self.meta.get("hosted", True))

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    def transforms(self) -> nn.Module:
        """The eval preprocessing these weights expect: a decoded uint8 [3, H, W] tensor or a PIL
        image (made RGB as files are decoded) → normalised float [3, crop, crop]."""
        return transforms_from_meta(self.meta)

    def __str__(self) -> str:
        return self.name


def transforms_from_meta(meta: dict[str, Any]) -> nn.Module:
    """The eval preprocessing a weights meta names (``preprocessing_type``, ``normalization``;
    the defaults ``imagenet`` and ``original``), e.g. the meta of a pretrained folder."""
    return eval_transform(
        meta.get("preprocessing_type", "imagenet"),
        normalization=meta.get("normalization", "original"),
    )


_LICENSE = "Apache-2.0 (weights and code of clovaai/assembled-cnn)"
_SOURCE = (
    "clovaai/assembled-cnn official TF checkpoint, converted with `assembled-lightning convert-tf`"
)
_COMMON_META = {
    "label_offset": 0,
    "normalization": "original",
    "source": _SOURCE,
    "license": _LICENSE,
    "hosted": False,
}

WEIGHTS: dict[str, Weights] = {
    weights.name: weights
    for weights in (
        Weights(
            name="assemble_resnet50.tf_in1k",
            model="assemble_resnet50",
            hf_repo="assembled-lightning/assemble_resnet50.tf_in1k",
            meta={
                **_COMMON_META,
                "num_classes": 1000,
                "categories": imagenet_categories(1000),
                "preprocessing_type": "imagenet_224_256",
                "metrics": {"top1": 82.78, "mCE": 48.89, "mFR": 32.3},
                "num_params": 41_846_440,
                "gmacs": 7.48,
                "eval_size": 256,
                "description": "Assemble-ResNet-50 (E11), ImageNet-1k, background logit dropped",
            },
        ),
        Weights(
            name="assemble_resnet152.tf_in1k",
            model="assemble_resnet152",
            hf_repo="assembled-lightning/assemble_resnet152.tf_in1k",
            meta={
                **_COMMON_META,
                "num_classes": 1000,
                "categories": imagenet_categories(1000),
                "preprocessing_type": "imagenet_224_256a",
                "metrics": {"top1": 84.19, "mCE": 43.27, "mFR": 29.3},
                "num_params": 117_004_200,
                "gmacs": 20.47,
                "eval_size": 256,
                "description": "Assemble-ResNet-152 (E12), ImageNet-1k, background logit dropped",
            },
        ),
    )
}
DEFAULT_WEIGHTS: dict[str, str] = {
    "assemble_resnet50": "assemble_resnet50.tf_in1k",
    "assemble_resnet152": "assemble_resnet152.tf_in1k",
}


def get_weights(name: str) -> Weights:
    """A registered weights entry by name; unknown names list the known ones."""
    try:
        return WEIGHTS[name]
    except KeyError:
        raise ValueError(
            f"unknown weights {name!r}; registered: {', '.join(sorted(WEIGHTS))}. A local folder "
            "written by `assembled-lightning convert-tf` or `save_pretrained` works too."
        ) from None


def list_weights(model: str | None = None) -> list[str]:
    """Names of the registered weights, optionally only those of one model."""
    return sorted(name for name, w in WEIGHTS.items() if model is None or w.model == model)
