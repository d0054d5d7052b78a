"""ImageNet-C mCE, ImageNet-P mFR and the original's ECE, as torchmetrics metrics.

Every state is a per-cell count or sum, so the metrics reduce exactly under DDP (counts are
integers; only ECE sums confidences, in float64). Every number is a fraction: a report shows
it ×100 (mCE 0.767 is "mCE 76.7", AlexNet scores 1.0 = "100").
"""

from .calibration import ExpectedCalibrationError
from .corruption_errors import (
    CLEAN,
    CorruptionError,
    CorruptionErrors,
    ErrorTable,
    corruption_error,
    mean_corruption_error,
    mean_error,
    relative_corruption_error,
    relative_mean_corruption_error,
    unnormalized_mean_error,
)
from .flip_rates import DIFFICULTIES, FlipProbability, FlipRates

__all__ = [
    "CLEAN",
    "DIFFICULTIES",
    "CorruptionError",
    "CorruptionErrors",
    "ErrorTable",
    "ExpectedCalibrationError",
    "FlipProbability",
    "FlipRates",
    "corruption_error",
    "mean_corruption_error",
    "mean_error",
    "relative_corruption_error",
    "relative_mean_corruption_error",
    "unnormalized_mean_error",
]
