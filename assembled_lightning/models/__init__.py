"""Backbones of the Assembled-CNN paper, usable from plain PyTorch (no Lightning needed)."""

from .base import Backbone
from .config import ResNetConfig
from .features import FeatureInfo, MultiScaleFeatures
from .fuse import fuse_for_inference
from .layers import BlurPool2d, DropBlock2d, SelectiveKernel, SqueezeExcite, TFSameMaxPool2d
from .mobilenet import MobileNetConfig, MobileNetV1
from .registry import ModelEntry, create_model, get_model_entry, list_models
from .resnet import AssembleResNet

__all__ = [
    "AssembleResNet",
    "Backbone",
    "BlurPool2d",
    "DropBlock2d",
    "FeatureInfo",
    "MobileNetConfig",
    "MobileNetV1",
    "ModelEntry",
    "MultiScaleFeatures",
    "ResNetConfig",
    "SelectiveKernel",
    "SqueezeExcite",
    "TFSameMaxPool2d",
    "create_model",
    "fuse_for_inference",
    "get_model_entry",
    "list_models",
]
