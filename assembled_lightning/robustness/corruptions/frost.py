"""ImageNet-C's frost: the image blended with a frost texture, a·x + b·texture.

The reference (``make_imagenet_c.py``) crops a random 224×224 window of one of five photographs
shipped with its code (``frost1.png`` … ``frost5.jpg``; ``frost6.jpg`` is listed but never
drawn). Their licence is not documented, so this package neither ships nor downloads them:

* ``frost_textures=`` names a folder holding those five files; each image then gets a uniformly
  drawn file and a uniformly drawn window, exactly like the reference (whose ``randint`` upper
  bound is exclusive, so the last window position is never used);
* by default each image gets its own procedural frost texture (:func:`procedural_frost`), made to
  resemble the photographs' colour and level statistics, not their exact pixels;
* ``texture=`` pins the texture itself (3×H×W or N×3×H×W in [0, 1]).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .filters import gaussian_filter
from .fog import plasma_fractal
from .pieces import in_pieces
from .registry import register

FROST_WEIGHTS = ((1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))
"""(weight of the image, weight of the frost texture), both on the same 0–1 (or 0–255) scale."""

FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
"""The reference's textures that ``np.random.randint(5)`` can draw (frost6.jpg never is)."""

_HOW_TO_GET = (
    "put the reference's frost1.png, frost2.png, frost3.png, frost4.jpg and frost5.jpg (from "
    "hendrycks/robustness, ImageNet-C/create_c/) in that folder, or leave frost_textures unset "
    "to use the procedural texture"
)


def _load_textures(folder: Path) -> tuple[torch.Tensor, tuple[tuple[int, int], ...]]:
    """The five files as one zero-padded 5×3×H×W uint8 stack (RGB, alpha dropped as
    ``cv2.imread`` does) and each file's (height, width); decoded once per version of the files."""
    if not folder.is_dir():
        raise FileNotFoundError(f"frost_textures folder {folder} does not exist: {_HOW_TO_GET}")
    missing = [name for name in FROST_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}: {_HOW_TO_GET}")
    versions = tuple(
        (f.stat().st_mtime_ns, f.stat().st_size) for f in map(folder.joinpath, FROST_FILES)
    )
    return _decode_textures(str(folder.resolve()), versions)


@lru_cache(maxsize=4)
def _decode_textures(
    folder: str, versions: tuple[tuple[int, int], ...]
) -> tuple[torch.Tensor, tuple[tuple[int, int], ...]]:
    arrays = []
    for name in FROST_FILES:
        path = Path(folder) / name
        try:
            with Image.open(path) as image:
                arrays.append(np.array(image.convert("RGB")))
        except OSError as error:
            raise ValueError(f"cannot read {path} as an image ({error}): {_HOW_TO_GET}") from None
    sizes = tuple((a.shape[0], a.shape[1]) for a in arrays)
    stack = torch.zeros(
        len(arrays), 3, max(h for h, _ in sizes), max(w for _, w in sizes), dtype=torch.uint8
    )
    for index, array in enumerate(arrays):
        stack[index, :, : array.shape[0], : array.shape[1]] = torch.from_numpy(array).permute(
            2, 0, 1
        )
    return stack, sizes


def _uniform_below(
    bounds: torch.Tensor, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """One uniform integer in 0 … bound−1 per entry of ``bounds`` (long tensor)."""
    uniform = torch.rand(bounds.shape, generator=generator, device=device, dtype=torch.float64)
    return torch.minimum((uniform * bounds).long(), bounds - 1)


def photo_frost(
    images: torch.Tensor, folder: str | Path, generator: torch.Generator | None
) -> torch.Tensor:
    """The reference's texture draw: per image a file of :data:`FROST_FILES` and an H×W window,
    as N×3×H×W in the images' dtype. A window equal to a file's size is allowed (offset 0)."""
    batch, _, height, width = images.shape
    stack, sizes = _load_textures(Path(folder))
    small = [
        name for name, (h, w) in zip(FROST_FILES, sizes, strict=True) if h < height or w < width
    ]
    if small:
        raise ValueError(
            f"frost texture(s) {', '.join(small)} are smaller than the {height}×{width} images; "
            "the reference crops windows of the image's size from each"
        )
    device = images.device
    choice = torch.randint(len(FROST_FILES), (batch,), generator=generator, device=device)
    limits = torch.tensor(sizes, device=device)[choice]
    top = _uniform_below((limits[:, 0] - height).clamp(min=1), generator, device)
    left = _uniform_below((limits[:, 1] - width).clamp(min=1), generator, device)
    rows = top[:, None] + torch.arange(height, device=device)
    cols = left[:, None] + torch.arange(width, device=device)
    windows = stack.to(device)[choice[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return windows.permute(0, 3, 1, 2).to(images.dtype) / 255


CRYSTAL_LENGTHS = (30, 18, 9)
"""Stem lengths (px) of the three sizes of feather-shaped ice crystals."""
CRYSTALS_PER_224 = (70, 150, 350)
"""How many crystals of each size a 224×224 texture gets (scaled with the area)."""
ORIENTATIONS = 12
"""Crystal directions, every 30°."""


def _segment_glow(
    ys: torch.Tensor, xs: torch.Tensor, start: tuple[float, float], angle: float, length: float
) -> torch.Tensor:
    """exp(−d²/2·0.6²) with d the distance of each (y, x) to a segment: a thin bright needle."""
    dy, dx = math.sin(angle), math.cos(angle)
    rel_y, rel_x = ys - start[0], xs - start[1]
    along = (rel_y * dy + rel_x * dx).clamp(0, length)
    dist2 = (rel_y - along * dy) ** 2 + (rel_x - along * dx) ** 2
    return torch.exp(-dist2 / (2 * 0.6**2))


@lru_cache(maxsize=8)
def _crystal_bank(length: int, device: torch.device) -> torch.Tensor:
    """ORIENTATIONS×P×P stamps of a feather crystal of stem ``length`` (a stem with barbs at
    ±60°, shorter towards the tip), root at the patch centre; float32, P = 2·length + 5."""
    radius = length + 2
    grid = torch.arange(-radius, radius + 1, dtype=torch.float32)
    ys, xs = grid[:, None], grid[None, :]
    stamps = []
    for k in range(ORIENTATIONS):
        angle = 2 * math.pi * k / ORIENTATIONS
        stamp = _segment_glow(ys, xs, (0.0, 0.0), angle, length)
        for t in (0.2, 0.35, 0.5, 0.65, 0.8):
            root = (t * length * math.sin(angle), t * length * math.cos(angle))
            for side in (-1, 1):
                barb = _segment_glow(
                    ys, xs, root, angle + side * math.pi / 3, 0.4 * length * (1 - t)
                )
                stamp = torch.maximum(stamp, 0.7 * barb)
        stamps.append(stamp)
    return torch.stack(stamps).to(device)


def procedural_frost(
    count: int,
    height: int,
    width: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``count`` frost textures, count×3×height×width in [0, 1], each with its own draws.

    Built to look like the reference's frost photographs: feather-shaped ice crystals (a stem
    with ±60° barbs) of three sizes and twelve directions, stamped at random places with random
    brightness, saturating where they overlap, over a mottled blue-grey background (a plasma
    map, as fog uses) with a per-texture level and a cold tint (red lowered, blue raised, less
    so on the crystals), plus fine grain. Its mean and spread per channel and its level
    histogram approximate those of the reference's 224-px crops (see the tests); its pixels
    are not those of the photographs.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    border = 2 * CRYSTAL_LENGTHS[0] + 5  # the largest patch
    canvas_h, canvas_w = height + 2 * border, width + 2 * border
    density = torch.zeros(count, canvas_h * canvas_w, device=device)
    scale = height * width / 224**2
    for length, per_224 in zip(CRYSTAL_LENGTHS, CRYSTALS_PER_224, strict=True):
        bank = _crystal_bank(length, device)
        patch = bank.shape[-1]
        shape = (count, max(1, round(per_224 * scale)))
        kind = torch.randint(ORIENTATIONS, shape, generator=generator, device=device)
        # patch corners such that roots fall up to half a patch outside the image on each side
        first = border - patch
        top = first + torch.randint(height + patch, shape, generator=generator, device=device)
        left = first + torch.randint(width + patch, shape, generator=generator, device=device)
        weight = 0.4 + 0.6 * torch.rand(shape, generator=generator, device=device)
        offsets = torch.arange(patch, device=device)
        rows, cols = top[..., None] + offsets, left[..., None] + offsets
        index = (rows[..., :, None] * canvas_w + cols[..., None, :]).reshape(count, -1)
        values = (bank[kind] * weight[..., None, None]).reshape(count, -1)
        density.scatter_add_(1, index, values)
    density = density.view(count, canvas_h, canvas_w)[
        :, border : border + height, border : border + width
    ]
    # the tone constants below were tuned so that the per-channel mean and spread and the grey
    # level quantiles approach those measured on the reference's photographs (see the tests)
    coverage = 1 - torch.exp(-1.6 * density)

    mapsize = max(2, 1 << (max(height, width) - 1).bit_length())
    mottle = plasma_fractal(count, mapsize, 2.0, generator=generator, device=device)
    mottle = mottle[:, :height, :width].float()
    draw = torch.rand(count, 4, generator=generator, device=device)
    level = (0.25 + 0.6 * draw[:, 0]).view(count, 1, 1)
    background = level + 0.3 * (mottle - 0.5)
    grey = background + (0.95 - background) * coverage
    tint = torch.stack(
        [-0.04 - 0.16 * draw[:, 1], -0.02 + 0.02 * draw[:, 2], 0.03 + 0.05 * draw[:, 3]], 1
    )
    rgb = grey[:, None] + tint.view(count, 3, 1, 1) * (1 - 0.8 * coverage[:, None])
    grain = gaussian_filter(
        torch.randn(count, 1, height, width, generator=generator, device=device), 0.7
    )
    return (rgb + 0.04 * grain).clamp(0, 1).to(dtype)


def _pinned_texture(images: torch.Tensor, texture: torch.Tensor) -> torch.Tensor:
    batch, _, height, width = images.shape
    if texture.shape not in ((3, height, width), (batch, 3, height, width)):
        raise ValueError(
            f"texture must be 3×H×W {(3, height, width)} or N×3×H×W {(batch, 3, height, width)}, "
            f"got {tuple(texture.shape)}"
        )
    return texture.to(device=images.device, dtype=images.dtype).expand(batch, 3, height, width)


@register("frost", "weather", inputs=("texture", "frost_textures"), reference_size=224)
def frost(
    images: torch.Tensor,
    severity: int,
    generator: torch.Generator | None,
    *,
    texture: torch.Tensor | None = None,
    frost_textures: str | Path | None = None,
) -> torch.Tensor:
    """a·x + b·texture: the image seen through frost (weights from :data:`FROST_WEIGHTS`).

    The texture is ``texture=`` if given, else a window of the reference's photographs in the
    ``frost_textures=`` folder, else a :func:`procedural_frost` texture per image.
    """
    image_weight, frost_weight = FROST_WEIGHTS[severity - 1]

    def blend(x: torch.Tensor, layer: torch.Tensor) -> torch.Tensor:
        return image_weight * x + frost_weight * layer

    if texture is not None:
        return blend(images, _pinned_texture(images, texture))
    if frost_textures is not None:
        return blend(images, photo_frost(images, frost_textures, generator))
    _, _, height, width = images.shape

    def through_procedural_frost(piece: torch.Tensor) -> torch.Tensor:
        layer = procedural_frost(
            len(piece), height, width, generator=generator, device=piece.device, dtype=piece.dtype
        )
        return blend(piece, layer)

    # each piece draws its own textures, in order (see CPU_PIECE_IMAGES)
    return in_pieces(through_procedural_frost, images)
