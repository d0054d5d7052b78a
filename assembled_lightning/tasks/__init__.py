"""Training: BaseTask (what every training task shares), ClassificationTask, fine-tuning
callbacks, losses, schedules."""

from .base import BaseTask, build_task_model
from .classification import ClassificationTask
from .finetuning import FreezeBackbone, LayerwiseLRDecay, StagedUnfreeze, StageSchedule
from .losses import distillation_loss, mixup, smooth, soft_cross_entropy
from .schedules import linear_keep_prob, warmup_cosine
from .stages import parameter_groups

__all__ = [
    "BaseTask",
    "ClassificationTask",
    "FreezeBackbone",
    "LayerwiseLRDecay",
    "StageSchedule",
    "StagedUnfreeze",
    "build_task_model",
    "distillation_loss",
    "linear_keep_prob",
    "mixup",
    "parameter_groups",
    "smooth",
    "soft_cross_entropy",
    "warmup_cosine",
]
