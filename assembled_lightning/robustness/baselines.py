"""AlexNet's errors and flip probabilities: the normalisers of mCE, relative mCE and mFR.

Hendrycks & Dietterich (ICLR 2019) divide every model's corruption error and flip probability
by AlexNet's (torchvision's pretrained AlexNet, hendrycks/robustness issue #38), so AlexNet
scores 100 by construction. All values here are fractions (0.886428, not 88.6428 %).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .corruptions import CORRUPTIONS, SEVERITIES

# Top-1 error of AlexNet on ImageNet-C, severities 1…5. Published by Hendrycks (issue #10 and
# the README's mCE spreadsheet), repeated in AugMix's ALEXNET_ERR and Meta's DINOv3
# ImageNet-C metric; every row's mean equals the published per-corruption normaliser.
_ALEXNET_ERROR_ROWS: dict[str, tuple[float, float, float, float, float]] = {
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
    "speckle_noise": (0.66192, 0.74440, 0.90246, 0.94548, 0.97268),
    "gaussian_blur": (0.54732, 0.70444, 0.82574, 0.89864, 0.95940),
    "spatter": (0.47196, 0.62194, 0.75052, 0.84132, 0.90182),
    "saturate": (0.59342, 0.65514, 0.51174, 0.70834, 0.82260),
}

ALEXNET_ERRORS: Mapping[tuple[str, int], float] = MappingProxyType(
    {
        (corruption, severity): _ALEXNET_ERROR_ROWS[corruption][severity - 1]
        for corruption in CORRUPTIONS
        for severity in SEVERITIES
    }
)
"""AlexNet's top-1 error (fraction) per ``(corruption, severity)``, all 19 × 5."""

ALEXNET_MEAN_ERRORS: Mapping[str, float] = MappingProxyType(
    {corruption: sum(row) / len(row) for corruption, row in _ALEXNET_ERROR_ROWS.items()}
)
"""AlexNet's error averaged over the 5 severities (= the published CE normaliser, e.g.
gaussian_noise 0.886428). assembled-cnn hard-codes these to 4 decimals (motion_blur 0.7860)."""

ALEXNET_CLEAN_ERROR: float = 1.0 - 0.56522
"""AlexNet's clean top-1 error, 0.43478: torchvision's published top-1 (56.522 %) of the
pretrained AlexNet that Hendrycks says he used (hendrycks/robustness issue #38). UNCONFIRMED as
the value in Hendrycks' relative-mCE spreadsheet, which we could not read. Only the relative
mCE depends on it."""

IMAGENET_P_PERTURBATIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "motion_blur",
    "zoom_blur",
    "snow",
    "brightness",
    "translate",
    "rotate",
    "tilt",
    "scale",
)
"""The 10 ImageNet-P test perturbations, the ones averaged into mFR (make_imagenet_p.py)."""

IMAGENET_P_VALIDATION_PERTURBATIONS: tuple[str, ...] = (
    "speckle_noise",
    "gaussian_blur",
    "spatter",
    "shear",
)
"""The 4 held-out ImageNet-P perturbations: not in mFR."""

ALL_IMAGENET_P_PERTURBATIONS: tuple[str, ...] = (
    IMAGENET_P_PERTURBATIONS + IMAGENET_P_VALIDATION_PERTURBATIONS
)

NOISE_PERTURBATIONS: frozenset[str] = frozenset(
    name for name in ALL_IMAGENET_P_PERTURBATIONS if "noise" in name
)
"""Perturbations whose frames are independent noisy copies of frame 1, so every frame is
compared with frame 1 rather than with its predecessor (ImageNet-P/test.py: ``'noise' in
name``): gaussian_noise, shot_noise, speckle_noise."""

ALEXNET_FLIP_PROBABILITIES: Mapping[str, float] = MappingProxyType(
    {
        # test perturbations (difficulty 1)
        "gaussian_noise": 0.23653,
        "shot_noise": 0.30062,
        "motion_blur": 0.09297,
        "zoom_blur": 0.05942,
        "snow": 0.11928,
        "brightness": 0.04889,
        "translate": 0.11007,
        "rotate": 0.13104,
        "tilt": 0.07050,
        "scale": 0.23531,
        # validation perturbations
        "speckle_noise": 0.18649,
        "gaussian_blur": 0.02775,
        "spatter": 0.05053,
        "shear": 0.10658,
    }
)
"""AlexNet's flip probability (fraction) per ImageNet-P perturbation, difficulty 1. The only
published copy found is assembled-cnn's ``ALEXNET_FP`` (mce/eval_robustness.py); Hendrycks'
sheet (hendrycks/robustness issue #49) has them too. AlexNet's top-5 distances (the mT5D
normalisers) were found nowhere, hence no mT5D here."""

__all__ = [
    "ALEXNET_CLEAN_ERROR",
    "ALEXNET_ERRORS",
    "ALEXNET_FLIP_PROBABILITIES",
    "ALEXNET_MEAN_ERRORS",
    "ALL_IMAGENET_P_PERTURBATIONS",
    "IMAGENET_P_PERTURBATIONS",
    "IMAGENET_P_VALIDATION_PERTURBATIONS",
    "NOISE_PERTURBATIONS",
]
