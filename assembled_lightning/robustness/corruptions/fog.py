"""ImageNet-C's fog: a diamond-square plasma fractal added to the image, then rescaled.

The reference (``make_imagenet_c.py``) draws one 256×256 plasma map per image with NumPy's
global generator and crops it to 224×224. Here every image of the batch gets its own map, of
side the next power of two at least max(H, W) (256 for the reference's 224), cropped to H×W;
``plasma=`` pins the map itself, with which the output equals the reference formula exactly.
"""

from __future__ import annotations

import torch

from .registry import register

FOG_PARAMS = ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))
"""(strength s: weight of the plasma map, wibbledecay: the map's roughness decay per octave)."""

WIBBLE_START = 100.0
"""The reference's initial wibble; its displacements are wibble·U(−wibble, wibble)."""


def _wibble(
    shape: tuple[int, int, int],
    wibble: float,
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    """The reference's random displacement wibble·U(−wibble, wibble), float64."""
    uniform = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    return (2 * uniform - 1) * (wibble * wibble)


def plasma_fractal(
    count: int,
    mapsize: int,
    wibbledecay: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``count`` independent diamond-square height maps, count×mapsize×mapsize float64 in [0, 1].

    The reference's algorithm (a variant of FLHerne's ``mapgen``), on a torus: starting from a
    zero corner with step = mapsize, each octave sets the centre of every square to the mean of
    its 4 corners, then the midpoint of every edge to the mean of its 4 diamond neighbours (2
    corners, 2 centres), each plus wibble·U(−wibble, wibble); the step halves and the wibble
    shrinks by ``wibbledecay`` per octave. Each map is finally rescaled to min 0, max 1.
    """
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two >= 2, got {mapsize}")
    device = torch.device("cpu") if device is None else torch.device(device)
    maps = torch.zeros(count, mapsize, mapsize, dtype=torch.float64, device=device)
    step, wibble = mapsize, WIBBLE_START
    while step >= 2:
        half, cells = step // 2, mapsize // step
        shape = (count, cells, cells)
        corners = maps[:, ::step, ::step]
        square = corners + corners.roll(-1, 1)
        square = square + square.roll(-1, 2)
        maps[:, half::step, half::step] = square / 4 + _wibble(shape, wibble, generator, device)
        centres = maps[:, half::step, half::step]
        # edge midpoints on the corners' rows: centres above and below, corners left and right
        on_rows = centres + centres.roll(1, 1) + corners + corners.roll(-1, 2)
        maps[:, ::step, half::step] = on_rows / 4 + _wibble(shape, wibble, generator, device)
        # edge midpoints on the corners' columns: centres left and right, corners above and below
        on_cols = centres + centres.roll(1, 2) + corners + corners.roll(-1, 1)
        maps[:, half::step, ::step] = on_cols / 4 + _wibble(shape, wibble, generator, device)
        step //= 2
        wibble /= wibbledecay
    maps = maps - maps.amin(dim=(1, 2), keepdim=True)
    return maps / maps.amax(dim=(1, 2), keepdim=True)


def _plasma_for(
    images: torch.Tensor,
    plasma: torch.Tensor | None,
    wibbledecay: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """N×H×W maps in the images' dtype: the pinned ``plasma`` (H×W for all, or N×H×W), or
    freshly drawn ones cropped from the next power-of-two square."""
    batch, _, height, width = images.shape
    if plasma is None:
        mapsize = max(2, 1 << (max(height, width) - 1).bit_length())
        maps = plasma_fractal(
            batch, mapsize, wibbledecay, generator=generator, device=images.device
        )
        return maps[:, :height, :width].to(images.dtype)
    if plasma.shape not in ((height, width), (batch, height, width)):
        raise ValueError(
            f"plasma must be H×W {(height, width)} or N×H×W {(batch, height, width)}, "
            f"got {tuple(plasma.shape)}"
        )
    plasma = plasma.to(device=images.device, dtype=images.dtype)
    if bool(plasma.min() < 0) or bool(plasma.max() > 1):
        raise ValueError("plasma must lie in [0, 1] (the reference's maps are min-max scaled)")
    return plasma.expand(batch, height, width)


@register("fog", "weather", inputs=("plasma",), reference_size=224)
def fog(
    images: torch.Tensor,
    severity: int,
    generator: torch.Generator | None,
    *,
    plasma: torch.Tensor | None = None,
) -> torch.Tensor:
    """(x + s·map)·m/(m + s), m = the image's maximum over all pixels and channels.

    The rescaling keeps the brightest fogged value near the image's own maximum, so fog washes
    contrast out rather than saturating to white. ``plasma=`` (H×W or N×H×W in [0, 1]) pins the
    map, the same for every channel. The reference's map is 256×256 cropped to 224×224.
    """
    strength, wibbledecay = FOG_PARAMS[severity - 1]
    maps = _plasma_for(images, plasma, wibbledecay, generator)
    peak = images.amax(dim=(1, 2, 3), keepdim=True)
    return (images + strength * maps[:, None]) * (peak / (peak + strength))
