"""ImageNet-C's four noise corruptions: Gaussian, shot (Poisson), impulse (salt & pepper) and
speckle noise, drawn independently for every element of every image.

The reference (``make_imagenet_c.py``) draws from NumPy's (and, for impulse noise, scikit-image's
own) random generators, so its draws cannot be reproduced; each function therefore accepts its
random part as a keyword input, with which it equals the reference formula exactly, and otherwise
draws from ``generator``. None of them depends on the image size.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from .registry import register

GAUSSIAN_STD = (0.08, 0.12, 0.18, 0.26, 0.38)
"""Standard deviation of the additive N(0, σ²) noise on images in [0, 1]."""
SHOT_PHOTONS = (60, 25, 12, 5, 3)
"""Photon count c of a white pixel: y = Poisson(x·c) / c."""
IMPULSE_AMOUNT = (0.03, 0.06, 0.09, 0.17, 0.27)
"""Probability that an element (one channel of one pixel) is replaced by 0 or 1."""
SPECKLE_STD = (0.15, 0.2, 0.35, 0.45, 0.6)
"""Standard deviation of the multiplicative noise: y = x + x·N(0, σ²)."""

POISSON_CPU_PIECES = 8
"""Pieces a CPU batch's Poisson draws are split into, each drawn from its own generator seeded
from the caller's: ``torch.poisson`` uses one CPU thread, so the pieces run on torch's threads.
The count is fixed, so the draws do not depend on the number of threads."""

SALT_VS_PEPPER = 0.5
"""scikit-image's default share of salt (1) among the replaced elements, as the reference uses."""


def _pinned(
    images: torch.Tensor, value: torch.Tensor | None, name: str, dtype: torch.dtype
) -> torch.Tensor | None:
    """A caller's pinned random field, checked to have the images' shape, on their device."""
    if value is None:
        return None
    if value.shape != images.shape:
        raise ValueError(
            f"{name} must have the images' shape {tuple(images.shape)}, got {tuple(value.shape)}"
        )
    return value.to(device=images.device, dtype=dtype)


def _standard_normal(
    images: torch.Tensor, noise: torch.Tensor | None, generator: torch.Generator | None
) -> torch.Tensor:
    pinned = _pinned(images, noise, "noise", images.dtype)
    if pinned is not None:
        return pinned
    return torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)


@register("gaussian_noise", "noise", inputs=("noise",))
def gaussian_noise(
    images: torch.Tensor,
    severity: int,
    generator: torch.Generator | None,
    *,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """x + σ·z, z ~ N(0, 1) per element (``noise=`` pins z: same shape as the images)."""
    return images + GAUSSIAN_STD[severity - 1] * _standard_normal(images, noise, generator)


@register("shot_noise", "noise", inputs=("counts",))
def shot_noise(
    images: torch.Tensor,
    severity: int,
    generator: torch.Generator | None,
    *,
    counts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Poisson(x·c) / c per element: photon noise, stronger in darker regions relative to x.

    ``counts=`` pins the Poisson draws (non-negative integers, same shape as the images), e.g. to
    replay ``np.random.poisson(x * c)``.
    """
    photons = SHOT_PHOTONS[severity - 1]
    drawn = _pinned(images, counts, "counts", images.dtype)
    if drawn is None:
        drawn = _poisson(images * photons, generator)
    return drawn / photons


def _poisson(rates: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``torch.poisson`` on every thread of the CPU (see ``POISSON_CPU_PIECES``); one call on a
    GPU, where it is parallel already."""
    if rates.device.type != "cpu":
        return torch.poisson(rates, generator=generator)
    seeds = torch.randint(2**62, (POISSON_CPU_PIECES,), generator=generator).tolist()

    def draw(piece: torch.Tensor, seed: int) -> torch.Tensor:
        return torch.poisson(piece, generator=torch.Generator().manual_seed(seed))

    pieces = rates.reshape(-1).chunk(POISSON_CPU_PIECES)
    with ThreadPoolExecutor(max_workers=torch.get_num_threads()) as pool:
        return torch.cat(list(pool.map(draw, pieces, seeds))).view(rates.shape)


@register("impulse_noise", "noise", inputs=("flipped", "salted"))
def impulse_noise(
    images: torch.Tensor,
    severity: int,
    generator: torch.Generator | None,
    *,
    flipped: torch.Tensor | None = None,
    salted: torch.Tensor | None = None,
) -> torch.Tensor:
    """Salt-and-pepper noise as ``skimage.util.random_noise(mode='s&p', amount=p)``.

    scikit-image draws two independent Bernoulli fields over every element (so the three
    channels of a pixel are hit independently): ``flipped`` (probability p) marks the replaced
    elements and ``salted`` (probability 1/2) whether a replaced element becomes 1 (salt) or 0
    (pepper). Both can be pinned as boolean tensors of the images' shape.
    """
    flip = _pinned(images, flipped, "flipped", torch.bool)
    if flip is None:
        flip = _bernoulli(images, IMPULSE_AMOUNT[severity - 1], generator)
    salt = _pinned(images, salted, "salted", torch.bool)
    if salt is None:
        salt = _bernoulli(images, SALT_VS_PEPPER, generator)
    replaced = torch.where(salt, 1.0, 0.0).to(images.dtype)
    return torch.where(flip, replaced, images)


def _bernoulli(
    images: torch.Tensor, probability: float, generator: torch.Generator | None
) -> torch.Tensor:
    """True with ``probability`` per element, by scikit-image's rule ``U[0, 1) <= p``."""
    uniform = torch.rand(
        images.shape, generator=generator, device=images.device, dtype=torch.float32
    )
    return uniform <= probability


@register("speckle_noise", "noise", inputs=("noise",))
def speckle_noise(
    images: torch.Tensor,
    severity: int,
    generator: torch.Generator | None,
    *,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """x + x·σ·z, z ~ N(0, 1) per element (``noise=`` pins z): noise proportional to intensity."""
    return images + images * (
        SPECKLE_STD[severity - 1] * _standard_normal(images, noise, generator)
    )
