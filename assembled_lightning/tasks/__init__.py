"""Training: BaseTask (what every training task shares), ClassificationTask, losses, schedules."""

from .base import BaseTask, build_task_model, parameter_groups
from .classification import ClassificationTask
from .losses import distillation_loss, mixup, smooth, soft_cross_entropy
from .schedules import linear_keep_prob, warmup_cosine

__all__ = [
    "BaseTask",
    "ClassificationTask",
    "build_task_model",
    "distillation_loss",
    "linear_keep_prob",
    "mixup",
    "parameter_groups",
    "smooth",
    "soft_cross_entropy",
    "warmup_cosine",
]
