"""The paper's training losses: label smoothing, mixup targets, distillation from stored logits
(paper §3.2; ORIGINAL.md §3.1 and §6). Pure functions on tensors, so each is checked by hand."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

MixupType = Literal["halves", "keep_batch"]


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of −Σ targets · log_softmax(logits)."""
    return -(targets * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()


def smooth(targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    """TF's label smoothing of (possibly mixed) one-hot targets: y·(1−ε) + ε/K.

    K is our head's width. On ImageNet the original's head has 1001 outputs (class 0 a
    never-used background; master:losses/cls_losses.py smooths over all of them), ours 1000:
    each class's target differs by ε/1000 − ε/1001 ≈ 1e-7 at ε = 0.1, the background's
    ε/1001 ≈ 1e-4 going to the real classes, and the optimum's logit margin between the true
    and any other class, ln(1 + (1−ε)·K/ε), is 9.1051 instead of 9.1061 — a 0.01 % change,
    kept rather than adding a phantom class. The fine-grained heads have no background, so
    there the targets are the original's exactly.
    """
    return targets * (1.0 - smoothing) + smoothing / targets.shape[-1]


def images_per_trained_image(mixup_alpha: float, mixup_type: MixupType) -> int:
    """Loaded images behind each trained image: 2 when mixup 'halves' mixes the two halves of
    a loaded batch into one (the original's type 1, which loads 2× the batch and repeats its
    data twice per epoch: master:functions/input_fns.py ``input_fn_cls``), else 1."""
    return 2 if mixup_alpha > 0 and mixup_type == "halves" else 1


@dataclass
class MixedBatch:
    images: torch.Tensor
    targets: torch.Tensor
    """Mixed one-hot targets [N, K]."""
    teacher_probs: torch.Tensor | None
    """Mixed softmax(teacher / T) [N, K], when the batch has teacher logits."""


def mixup(
    images: torch.Tensor,
    one_hot: torch.Tensor,
    teacher_probs: torch.Tensor | None,
    alpha: float,
    kind: MixupType = "halves",
) -> MixedBatch:
    """Mixup with one λ ~ Beta(α, α) per mixed pair, as the original ``data_util.mixup``.

    'halves' (the original's type 1, used by its scripts): split a batch of 2B into halves and
    return B images λ·x₁ + (1−λ)·x₂. 'keep_batch' (type 2): return 2B images, the halves mixed as
    above followed by x₁ mixed with the reversed second half under a second λ. Targets and
    teacher probabilities are mixed with the same λ (the original's type 2 mixes the hard labels
    into the teacher targets by mistake; we do not).
    """
    if kind not in ("halves", "keep_batch"):
        raise ValueError(f"mixup type must be 'halves' or 'keep_batch', got {kind!r}")
    if images.shape[0] % 2:
        raise ValueError(f"mixup needs an even batch size, got {images.shape[0]}")
    half = images.shape[0] // 2
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    tensors = [images, one_hot] + ([teacher_probs] if teacher_probs is not None else [])
    partners = [lambda t: t[half:]] + ([lambda t: t[half:].flip(0)] if kind == "keep_batch" else [])
    mixed: list[list[torch.Tensor]] = [[] for _ in tensors]
    for partner in partners:
        lam = beta.sample((half,)).to(images.device)
        for out, tensor in zip(mixed, tensors, strict=True):
            weight = lam.view((-1,) + (1,) * (tensor.dim() - 1)).to(tensor.dtype)
            out.append(weight * tensor[:half] + (1 - weight) * partner(tensor))
    joined = [torch.cat(parts) for parts in mixed]
    return MixedBatch(joined[0], joined[1], joined[2] if teacher_probs is not None else None)


def distillation_loss(
    logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T² · CE(softmax(teacher / T), student / T), as the original (``teacher_probs`` are the
    already-tempered, possibly mixed, teacher probabilities)."""
    return temperature**2 * soft_cross_entropy(logits / temperature, teacher_probs)
