"""Building blocks of the assembled networks: blur-pool, Selective Kernel, SE, DropBlock.

Every layer follows the original TensorFlow code (clovaai/assembled-cnn, ``nets/blocks.py``)
to the letter where it matters for converted weights; the references in each docstring point
at the paper section and the spec in ``shared/reference/ORIGINAL.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

# Rows of Pascal's triangle: the binomial blur filters of sizes 1..7 (paper §3.1.3, Zhang 2019).
_BINOMIAL_ROWS: dict[int, tuple[float, ...]] = {
    1: (1.0,),
    2: (1.0, 1.0),
    3: (1.0, 2.0, 1.0),
    4: (1.0, 3.0, 3.0, 1.0),
    5: (1.0, 4.0, 6.0, 4.0, 1.0),
    6: (1.0, 5.0, 10.0, 10.0, 5.0, 1.0),
    7: (1.0, 6.0, 15.0, 20.0, 15.0, 6.0, 1.0),
}


def binomial_filter(size: int) -> torch.Tensor:
    """The normalised 2-D binomial filter ``outer(row, row) / sum`` of a given size."""
    if size not in _BINOMIAL_ROWS:
        raise ValueError(f"blur filter size must be one of 1..7, got {size}")
    row = torch.tensor(_BINOMIAL_ROWS[size], dtype=torch.float64)
    kernel = torch.outer(row, row)
    return (kernel / kernel.sum()).to(torch.float32)


class BlurPool2d(nn.Module):
    """Anti-aliased downsampling: per-channel binomial blur, then subsampling (paper §3.1.3).

    As the original: reflect padding of ``(size - 1) // 2`` on every side, then a depthwise
    'VALID' convolution with the given stride. The filter is a constant, so it is a
    non-persistent buffer and never appears in a state dict (the TF checkpoints have none).
    """

    filter: torch.Tensor

    def __init__(self, channels: int, filter_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.channels = channels
        self.filter_size = filter_size
        self.stride = stride
        self.padding = (filter_size - 1) // 2
        weight = binomial_filter(filter_size)[None, None].repeat(channels, 1, 1, 1)
        self.register_buffer("filter", weight, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding:
            x = F.pad(x, (self.padding,) * 4, mode="reflect")
        return F.conv2d(x, self.filter.to(x.dtype), stride=self.stride, groups=self.channels)

    def extra_repr(self) -> str:
        return f"{self.channels}, filter_size={self.filter_size}, stride={self.stride}"


@torch.fx.wrap  # a leaf of torch.fx graphs, which cannot take max() of a traced size
def _tf_same_pads(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


class TFSameMaxPool2d(nn.Module):
    """Max-pool with TensorFlow 'SAME' padding, which puts the odd pixel at the bottom/right.

    The original's vanilla stem pools a 112-px map with ``padding='SAME'``, i.e. pads (0, 1);
    PyTorch's ``MaxPool2d(3, 2, padding=1)`` pads (1, 1) and changes the logits (ORIGINAL.md).
    """

    def __init__(self, kernel_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = _tf_same_pads(x.shape[-2], self.kernel_size, self.stride)
        left, right = _tf_same_pads(x.shape[-1], self.kernel_size, self.stride)
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation as the original ``se_block``: bias-free 1×1 convs (paper §3.1.2)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if reduction < 1 or channels // reduction < 1:
            raise ValueError(
                f"SE reduction {reduction} leaves no channels for {channels} input channels; "
                "use a reduction between 1 and the channel count"
            )
        hidden = channels // reduction
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = torch.sigmoid(self.fc2(F.relu(self.fc1(scale), inplace=True)))
        return x * scale


class SelectiveKernel(nn.Module):
    """Selective Kernel unit (paper §3.1.2, Table 2).

    ``kernel_sizes=(3, 3)`` is the original's "3×3, 2× channel" unit: ONE 3×3 conv with 2·C
    outputs and one BN over them, split in two halves, so its weights keep the layout of the TF
    kernel ``[3, 3, C, 2C]``. ``(3, 5)`` is the classic SKNet pair of branches (3×3 and 5×5),
    each with its own conv and BN. Both fuse with: GAP of the branch sum → 1×1 conv to
    ``d = max(C // reduction, min_dim)`` → BN → ReLU → 1×1 conv to 2·C → softmax across the
    two branches per channel. No BN or ReLU follows the fusion.

    At inference the fusion allocates one map, not four: the branch sum that the GAP reads is
    overwritten, step by step and in place, with the softmax-weighted mix ``u1 + (u0 - u1)·a0``
    (bit for bit the out-of-place formula; the GAP's backward does not need the sum).
    """

    conv_bn_pairs = (("conv", "bn"), ("fc1", "fc_bn"))
    """Folded by ``fuse_for_inference``; the (3, 5) branches are Sequentials, folded as such."""

    def __init__(
        self,
        channels: int,
        kernel_sizes: Sequence[int] = (3, 3),
        stride: int = 1,
        reduction: int = 2,
        min_dim: int = 32,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        kernel_sizes = tuple(kernel_sizes)
        if kernel_sizes not in ((3, 3), (3, 5)):
            raise ValueError(
                f"Selective Kernel supports kernel_sizes (3, 3) (the paper's 2×-channel 3×3) or "
                f"(3, 5), got {kernel_sizes}"
            )
        self.channels = channels
        self.kernel_sizes = kernel_sizes
        self.fused = kernel_sizes == (3, 3)
        if self.fused:
            self.conv = nn.Conv2d(channels, 2 * channels, 3, stride, 1, bias=False)
            self.bn = nn.BatchNorm2d(2 * channels, eps=bn_eps, momentum=bn_momentum)
        else:
            self.paths = nn.ModuleList(
                nn.Sequential(
                    nn.Conv2d(channels, channels, k, stride, k // 2, bias=False),
                    nn.BatchNorm2d(channels, eps=bn_eps, momentum=bn_momentum),
                    nn.ReLU(inplace=True),
                )
                for k in kernel_sizes
            )
        attn_dim = max(int(channels / reduction), min_dim)
        self.fc1 = nn.Conv2d(channels, attn_dim, 1, bias=False)
        self.fc_bn = nn.BatchNorm2d(attn_dim, eps=bn_eps, momentum=bn_momentum)
        self.fc2 = nn.Conv2d(attn_dim, 2 * channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            both = F.relu(self.bn(self.conv(x)), inplace=True)
            u0, u1 = both.chunk(2, dim=1)
        else:
            u0, u1 = (path(x) for path in self.paths)
        mix = u0 + u1
        summary = mix.mean((2, 3), keepdim=True)
        logits = self.fc2(F.relu(self.fc_bn(self.fc1(summary)), inplace=True))
        a0, a1 = logits.chunk(2, dim=1)
        weight0 = torch.sigmoid(a0 - a1)  # softmax over two branches, per channel
        return mix.copy_(u0).sub_(u1).mul_(weight0).add_(u1)


class DropBlock2d(nn.Module):
    """DropBlock as the original (paper §3.2.3, ORIGINAL.md §1.7).

    One Bernoulli seed map per channel, *shared by every sample of the batch*; each seed drops a
    ``block_size``² square; the output is rescaled by numel/kept of the whole mask. ``keep_prob``
    lives in a tensor buffer so that a per-step schedule does not recompile ``torch.compile``d
    models; :meth:`set_keep_prob` also flips a Python flag once, so a layer at ``keep_prob=1`` costs
    nothing. Identity in eval mode: it returns its input, draws no random numbers and allocates
    nothing. On maps smaller than the block the block shrinks to the map (the original cannot
    run there at all).
    """

    keep_prob: torch.Tensor

    def __init__(self, block_size: int = 7, gamma_scale: float = 1.0) -> None:
        super().__init__()
        if block_size < 1:
            raise ValueError(f"DropBlock block_size must be >= 1, got {block_size}")
        self.block_size = block_size
        self.gamma_scale = gamma_scale
        self.active = False
        self.register_buffer("keep_prob", torch.ones(()), persistent=False)

    def set_keep_prob(self, keep_prob: float) -> None:
        if not 0.0 < keep_prob <= 1.0:
            raise ValueError(f"keep_prob must lie in (0, 1], got {keep_prob}")
        self.keep_prob.fill_(keep_prob)
        self.active = keep_prob < 1.0 and self.gamma_scale > 0

    def drop_mask(self, x: torch.Tensor) -> torch.Tensor:
        """The 0/1 keep-mask of shape ``[1, C, H, W]`` (before renormalisation)."""
        _, channels, height, width = x.shape
        block = min(self.block_size, height, width)
        seed_h, seed_w = height - block + 1, width - block + 1
        gamma = (
            self.gamma_scale
            * (1.0 - self.keep_prob)
            * (height * width)
            / (block**2)
            / (seed_h * seed_w)
        )
        seeds = (torch.rand(1, channels, seed_h, seed_w, device=x.device) < gamma).to(x.dtype)
        # The original centres the seed region in the map (pads block-1 in all, the odd pixel
        # before), then max-pools 'SAME' (block-1 in all, the odd pixel after): block-1 zeros on
        # every side in total, padded once here.
        seeds = F.pad(seeds, (block - 1,) * 4)
        return 1.0 - F.max_pool2d(seeds, block, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.active:
            return x
        mask = self.drop_mask(x)
        scale = mask.numel() / (mask.float().sum() + 1e-8)
        # Scaling the [1, C, H, W] mask first saves a batch-sized map; as the mask is 0 or 1,
        # x · (mask · scale) is bit for bit (x · mask) · scale.
        return x * (mask * scale.to(x.dtype))

    def extra_repr(self) -> str:
        return f"block_size={self.block_size}, gamma_scale={self.gamma_scale}"


def set_dropblock_keep_prob(module: nn.Module, keep_prob: float) -> int:
    """Set ``keep_prob`` on every :class:`DropBlock2d` inside ``module``; returns how many."""
    layers = [m for m in module.modules() if isinstance(m, DropBlock2d)]
    for layer in layers:
        layer.set_keep_prob(keep_prob)
    return len(layers)
