"""Run a per-image computation on a CPU batch a few images at a time.

Most corruptions are chains of element-wise steps over the whole batch. On the CPU a 32-image
plane of 224×224 float64 values is 12.8 MB, so every step of such a chain streams its operands
and a freshly allocated result through main memory (and page-faults the new pages in). Four
images at a time keep the intermediates in the caches: measured on a 2-core Xeon, 32 images ×
5 severities, 2 threads, brightness 0.63–0.95 → 0.29–0.36 s, pixelate 0.77–0.89 → 0.41 s,
elastic_transform 1.29–1.44 → 0.62–0.64 s (``benchmarks/RESULTS.md``). A GPU batch runs whole.
Only computations that treat each image on its own may be split.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

CPU_PIECE_IMAGES = 4
"""Images per piece on the CPU: 2–8 measured about equal, 1 and the whole batch slower."""


def in_pieces(
    per_image: Callable[..., torch.Tensor], *batched: torch.Tensor, piece: int | None = None
) -> torch.Tensor:
    """``per_image(*batched)``, on the CPU computed on pieces of ``piece`` (default
    :data:`CPU_PIECE_IMAGES`) images of every tensor of ``batched`` (split along dim 0, all of
    the same length) and concatenated in order.

    ``per_image`` must treat the images independently (no batch statistics), so that the
    pieces give the whole batch's result. Random draws belong before the split; one that is
    drawn inside (frost's procedural textures) is drawn piece after piece, so its values
    depend on :data:`CPU_PIECE_IMAGES`.
    """
    size = CPU_PIECE_IMAGES if piece is None else piece
    if size < 1:
        raise ValueError(f"a piece needs at least one image, got {size}")
    count = batched[0].shape[0]
    if any(tensor.shape[0] != count for tensor in batched):
        raise ValueError(
            f"every batched tensor needs {count} entries, got {[t.shape[0] for t in batched]}"
        )
    if batched[0].device.type != "cpu" or count <= size:
        return per_image(*batched)
    pieces = zip(*(tensor.split(size) for tensor in batched), strict=True)
    return torch.cat([per_image(*piece_tensors) for piece_tensors in pieces])
