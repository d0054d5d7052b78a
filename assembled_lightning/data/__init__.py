"""Data: decoding, the paper's preprocessing, DataModules and the teacher-logit store.

The DataModules, which need Lightning, are imported on first use (PEP 562): decoding, the
preprocessing that pretrained weights carry and the logit store work without Lightning, so
``torch.hub`` users of the models need only torch, torchvision, safetensors and huggingface_hub.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .autoaugment import AutoAugment
from .decode import ImageDecodeError, decode_image
from .samples import ImageDataset, Sample
from .teacher_logits import TeacherLogitStore, extract_teacher_logits
from .transforms import (
    EVAL_TYPES,
    ORIGINAL_MEAN_RGB,
    EvalTransform,
    Normalize,
    TrainTransform,
    eval_transform,
)

if TYPE_CHECKING:
    from .datamodules import (
        CUB200DataModule,
        FGVCAircraftDataModule,
        Flowers102DataModule,
        Food101DataModule,
        ImageDataModule,
        ImageFolderDataModule,
        ImageNetDataModule,
        OxfordIIITPetDataModule,
        StanfordCarsDataModule,
        StanfordOnlineProductsDataModule,
    )
    from .synthetic import SyntheticShapesDataModule
    from .unlabelled import UnlabelledImageFolderDataModule

__all__ = [
    "EVAL_TYPES",
    "ORIGINAL_MEAN_RGB",
    "AutoAugment",
    "CUB200DataModule",
    "EvalTransform",
    "FGVCAircraftDataModule",
    "Flowers102DataModule",
    "Food101DataModule",
    "ImageDataModule",
    "ImageDataset",
    "ImageDecodeError",
    "ImageFolderDataModule",
    "ImageNetDataModule",
    "Normalize",
    "OxfordIIITPetDataModule",
    "Sample",
    "StanfordCarsDataModule",
    "StanfordOnlineProductsDataModule",
    "SyntheticShapesDataModule",
    "TeacherLogitStore",
    "TrainTransform",
    "UnlabelledImageFolderDataModule",
    "decode_image",
    "eval_transform",
    "extract_teacher_logits",
]


_OWN_MODULES = {
    "SyntheticShapesDataModule": "synthetic",
    "UnlabelledImageFolderDataModule": "unlabelled",
}


def __getattr__(name: str) -> Any:
    """The DataModules (every ``*DataModule`` name), imported with Lightning on first use."""
    if name not in __all__ or not name.endswith("DataModule"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _OWN_MODULES.get(name, "datamodules")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
