"""assembled-lightning: Assemble-ResNet (arXiv 2001.06268) for PyTorch and Lightning."""

from .models import (
    AssembleResNet,
    MobileNetConfig,
    MobileNetV1,
    ResNetConfig,
    create_model,
    fuse_for_inference,
    get_model_entry,
    list_models,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "AssembleResNet",
    "MobileNetConfig",
    "MobileNetV1",
    "ResNetConfig",
    "__version__",
    "create_model",
    "fuse_for_inference",
    "get_model_entry",
    "list_models",
]
