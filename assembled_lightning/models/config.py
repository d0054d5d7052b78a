"""Configuration of the one configurable ResNet family (paper §3.1, ORIGINAL.md §1).

Every switch of the paper is a field here, with the default of the released Assemble-ResNet
recipe where the paper has one and the section or table it comes from in its comment. A config
is frozen and validated on construction, so a bad combination fails before any layer is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, Union

StemType = Literal["conv7", "deep"]
StemPoolPadding = Literal["symmetric", "tf_same"]
Shortcut = Literal["conv", "avg2", "avg3"]
SelectiveKernelType = Literal["none", "3x3_2x", "3x3_5x5"]
AntiAliasPlace = Literal["sconv", "max", "proj"]
InitScheme = Literal["tf", "torchvision"]

BOTTLENECK_DEPTHS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
BASIC_DEPTHS: dict[int, tuple[int, int, int, int]] = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
# BigLittleNet block counts of the original (master:functions/model_fns.py get_block_sizes).
BIG_LITTLE_DEPTHS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (4, 8, 18, 3),
    152: (5, 12, 30, 3),
}


BN_MOMENTUM_HINT = "PyTorch's convention: 1 - TF's decay, e.g. 0.003 for the original's 0.997"

# --------------------------------------------------------------------------------------------------
# One validator for both config families: a field's type hint says what it may hold (a ``Literal``
# lists the allowed strings), ``bounded`` declares its numeric range next to its default.
# --------------------------------------------------------------------------------------------------

_T = TypeVar("_T")


@dataclass(frozen=True)
class Bounds:
    """The allowed range of a number field (of each number of a tuple field); None = open."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None

    def __contains__(self, value: float) -> bool:
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
        )

    def __str__(self) -> str:
        if isinstance(self.ge, int) and isinstance(self.le, int):
            return f"in {self.ge}..{self.le}"
        if self.ge is not None and self.le is not None:
            return f"in [{self.ge}, {self.le}]"
        limits = ((">=", self.ge), (">", self.gt), ("<=", self.le))
        return " and ".join(f"{sign} {bound}" for sign, bound in limits if bound is not None)


def bounded(
    default: _T,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    hint: str = "",
) -> _T:
    """A config field with a declared range, checked by ``validate_fields``; ``hint`` is added
    to its error message."""
    return field(default=default, metadata={"bounds": Bounds(ge, gt, le), "hint": hint})


@functools.cache
def _field_types(config_class: type) -> dict[str, Any]:
    return typing.get_type_hints(config_class)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType)


def _tuple_items(hint: Any, length: int) -> tuple[Any, ...]:
    """The item types of a ``tuple[...]`` hint for a tuple of ``length`` values."""
    args = typing.get_args(hint)
    return args[:1] * length if args[-1:] == (Ellipsis,) else args


def _accepts(hint: Any, value: Any, bounds: Bounds) -> bool:
    """Whether ``value`` has type ``hint`` (numbers also within ``bounds``, and finite)."""
    origin = typing.get_origin(hint)
    if _is_union(hint):
        return any(_accepts(arg, value, bounds) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is Literal:
        return any(type(value) is type(arg) and value == arg for arg in typing.get_args(hint))
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        items = _tuple_items(hint, len(value))
        return len(items) == len(value) and all(
            _accepts(item, element, bounds) for item, element in zip(items, value, strict=True)
        )
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) and value in bounds
    if hint is float:
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return is_number and math.isfinite(value) and value in bounds
    raise TypeError(f"validate_fields cannot check a field of type {hint!r}")


def _describe(hint: Any, bounds: Bounds) -> str:
    """What ``_accepts`` accepts, in words."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _is_union(hint):
        return " or ".join(_describe(arg, bounds) for arg in args)
    if hint is type(None):
        return "None"
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin is tuple:
        count = "" if args[-1:] == (Ellipsis,) else f"{len(args)} "
        return f"a tuple of {count}values, each {_describe(args[0], bounds)}"  # all alike
    if hint is bool:
        return "True or False"
    kind = "an int" if hint is int else "a finite number"
    return f"{kind} {bounds}".strip()


def _literal_choices(hint: Any) -> list[str]:
    if typing.get_origin(hint) is Literal:
        return [arg for arg in typing.get_args(hint) if isinstance(arg, str)]
    return [choice for arg in typing.get_args(hint) for choice in _literal_choices(arg)]


def _suggestion(hint: Any, value: Any) -> str:
    """' (did you mean …?)' for a string that is close to an allowed one, else ''."""
    choices = _literal_choices(hint)
    strings = [value] if isinstance(value, str) else list(value) if isinstance(value, tuple) else []
    for text in (s for s in strings if isinstance(s, str) and s not in choices):
        close = [c for c in choices if c.lower() == text.lower()]
        close = close or difflib.get_close_matches(text, choices, n=2, cutoff=0.6)
        if close:
            return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
    return ""


def validate_fields(config: Any) -> None:
    """Check every field of a config dataclass against its type hint and declared range.

    Called first in ``__post_init__`` of ``ResNetConfig`` and ``MobileNetConfig``, so that a
    typo (``stem="Deep"``) or a bad number (``bn_eps=-1``) fails with the field, the value and
    what is allowed, instead of building another network. Lists (YAML, JSON) become tuples.
    """
    config_class: type = type(config)
    for spec in dataclasses.fields(config):
        hint = _field_types(config_class)[spec.name]
        value = getattr(config, spec.name)
        if isinstance(value, list) and _holds_tuples(hint):
            value = tuple(value)
            object.__setattr__(config, spec.name, value)
        bounds = spec.metadata.get("bounds", Bounds())
        if not _accepts(hint, value, bounds):
            hint_text = spec.metadata.get("hint", "")
            raise ValueError(
                f"{config_class.__name__}.{spec.name} must be {_describe(hint, bounds)}; got "
                f"{value!r}{_suggestion(hint, value)}" + (f" ({hint_text})" if hint_text else "")
            )


def _holds_tuples(hint: Any) -> bool:
    hints = typing.get_args(hint) if _is_union(hint) else (hint,)
    return any(typing.get_origin(h) is tuple for h in hints)


@dataclass(frozen=True)
class ResNetConfig:
    """Every architectural switch of the assembled ResNet family.

    The defaults build a torchvision-style ResNet-50; the registry's named variants set the paper's
    switches. Field comments name the paper section (arXiv 2001.06268) or ORIGINAL.md section.
    """

    depth: int = 50
    """18/34 (basic blocks) or 50/101/152 (bottlenecks); block counts as torchvision (§2)."""
    num_classes: int = bounded(1000, ge=0)
    """Classifier outputs; 0 removes the classifier. The original ImageNet head has 1001 (§2.3)."""
    in_channels: int = bounded(3, ge=1)
    base_width: int = bounded(64, ge=1)
    """Width of the stem and stage 1 (``num_filters`` of the original; 8 in the thin fixtures)."""
    stem: StemType = "conv7"
    """'conv7' = one 7×7/2 conv; 'deep' = ResNet-D's three 3×3 convs (paper §3.1.1, ResNet-D)."""
    stem_width: int = bounded(32, ge=1)
    """Width of the first two convs of the 'deep' stem (half the base width in the original)."""
    stem_pool_padding: StemPoolPadding = "symmetric"
    """Stem max-pool padding: 'symmetric' as torchvision, or 'tf_same' as the original (pads
    only bottom/right, ORIGINAL.md §0); irrelevant with BigLittleNet, which has no max-pool."""
    shortcut: Shortcut = "conv"
    """Projection shortcut: strided 1×1 'conv' (ResNet-B), 'avg2' = 2×2 avg-pool + 1×1 (ResNet-D,
    §3.1.1), 'avg3' = 3×3 avg-pool + 1×1 (the BigLittleNet shortcut; 'D' in 'D+BL', §3.1.4)."""
    se_reduction: int | None = bounded(None, ge=1)
    """Squeeze-and-Excitation reduction ratio; None disables SE (paper §3.1.2, Table 2; r=16)."""
    selective_kernel: SelectiveKernelType = "none"
    """Selective Kernel in place of the 3×3 conv: '3x3_2x' = one 3×3 conv with 2× channels (the
    released models), '3x3_5x5' = the SKNet pair of branches (paper §3.1.2, Table 2)."""
    sk_reduction: int = bounded(2, ge=1)
    """SK attention reduction r: d = max(width / r, sk_min_dim) (paper Table 2; r=2)."""
    sk_min_dim: int = bounded(32, ge=1)
    """SK attention minimum width L (paper §3.1.2; L=32)."""
    anti_alias: tuple[AntiAliasPlace, ...] = ()
    """Where to blur before subsampling (paper §3.1.3, Table 3): 'sconv' = after the strided 3×3
    (or SK) of each downsampling block, 'max' = the stem max-pool, 'proj' = the projection
    shortcut. The released models use ('sconv',)."""
    anti_alias_filter_size: int = bounded(3, ge=2, le=7)
    """Binomial blur filter size, 2..7 (paper Table 3; 3 in the released models)."""
    big_little: bool = False
    """BigLittleNet stem module and big/little/merge stages as the original's resnet_version=2
    (paper §3.1.4); implies stage strides (2, 2, 1, 2) and the 'avg3' shortcut."""
    bl_alpha: int = bounded(2, ge=1)
    """BigLittleNet width ratio α of the little branch (α=2 for R50, 1 for R152)."""
    bl_beta: int = bounded(4, ge=1)
    """BigLittleNet depth ratio β of the little branch (β=4 for R50, 2 for R152)."""
    dropblock: bool = False
    """DropBlock in stages 3 and 4 after every BN, the SK output and the shortcut (paper §3.2.3)."""
    dropblock_size: int = bounded(7, ge=1)
    """DropBlock block size (7 in both stages in the original)."""
    dropblock_gamma_scales: tuple[float, float, float, float] = bounded((0.0, 0.0, 0.25, 1.0), ge=0)
    """Per-stage multiplier of DropBlock's γ; 0 disables it in that stage (original: 0.25, 1.0)."""
    zero_gamma: bool = True
    """Initialise the last BN γ of each residual branch to 0 (paper §3.2, 'zero-γ')."""
    bn_eps: float = bounded(1e-5, gt=0)
    """BatchNorm epsilon (1e-5 in the original)."""
    bn_momentum: float = bounded(0.003, ge=0.0, le=0.5, hint=BN_MOMENTUM_HINT)
    """BatchNorm momentum in PyTorch's convention: 1 − 0.997 of the original's decay."""
    init: InitScheme = "tf"
    """'tf' = the original's initialisers (fan-in truncated normal, scale 1; Glorot-uniform dense),
    'torchvision' = Kaiming-normal fan-out convs and PyTorch's default Linear."""
    block_counts: tuple[int, int, int, int] | None = bounded(
        None, ge=1, hint="four counts, one per stage"
    )
    """Override the per-stage block counts derived from ``depth`` (for experiments and tests)."""

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.depth not in BOTTLENECK_DEPTHS and self.depth not in BASIC_DEPTHS:
            raise ValueError(f"depth must be one of 18, 34, 50, 101, 152; got {self.depth}")
        if self.bottleneck is False:
            for name, value, off in (
                ("selective_kernel", self.selective_kernel, "none"),
                ("big_little", self.big_little, False),
            ):
                if value != off:
                    raise ValueError(
                        f"{name}={value!r} needs bottleneck blocks (depth 50, 101 or 152); "
                        f"depth {self.depth} uses basic blocks"
                    )
            if "sconv" in self.anti_alias:
                raise ValueError("anti_alias 'sconv' needs bottleneck blocks (depth >= 50)")
        if self.big_little and self.depth not in BIG_LITTLE_DEPTHS:
            raise ValueError(f"big_little supports depth 50, 101, 152; got {self.depth}")
        if self.big_little and self.shortcut != "avg3":
            raise ValueError(
                "big_little=True always uses the 3×3 avg-pool shortcut of the original; set "
                f"shortcut='avg3' (got {self.shortcut!r})"
            )
        if self.big_little and "max" in self.anti_alias:
            raise ValueError(
                "anti_alias 'max' blurs the stem max-pool, which BigLittleNet replaces"
            )
        if "proj" in self.anti_alias and self.shortcut != "conv":
            raise ValueError(
                "anti_alias 'proj' blurs the strided 1×1 projection, which only exists with "
                f"shortcut='conv'; shortcut {self.shortcut!r} already pools before its 1×1"
            )
        if self.base_width % self.bl_alpha:
            raise ValueError(
                f"base_width {self.base_width} must be a positive multiple of bl_alpha"
            )
        if self.big_little and self.block_counts is not None and min(self.block_counts[:3]) < 2:
            raise ValueError("big_little needs >= 2 blocks in stages 1-3 (one is the merge block)")

    @property
    def bottleneck(self) -> bool:
        return self.depth >= 50

    @property
    def stage_blocks(self) -> tuple[int, int, int, int]:
        if self.block_counts is not None:
            return self.block_counts
        if self.big_little:
            return BIG_LITTLE_DEPTHS[self.depth]
        return {**BOTTLENECK_DEPTHS, **BASIC_DEPTHS}[self.depth]

    @property
    def stage_strides(self) -> tuple[int, int, int, int]:
        """(2, 2, 1, 2) with BigLittleNet (its stem module has no max-pool), else (1, 2, 2, 2)."""
        return (2, 2, 1, 2) if self.big_little else (1, 2, 2, 2)

    @property
    def input_multiple(self) -> int:
        """Input sides must be a multiple of this (32 with BigLittleNet, ORIGINAL.md §7.15)."""
        return 32 if self.big_little else 1

    def replace(self, **changes: Any) -> ResNetConfig:
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            allowed = ", ".join(sorted(f.name for f in dataclasses.fields(self)))
            raise TypeError(f"unknown ResNetConfig field(s) {sorted(unknown)}; allowed: {allowed}")
        if "anti_alias" in changes and isinstance(changes["anti_alias"], str):
            changes["anti_alias"] = (changes["anti_alias"],) if changes["anti_alias"] else ()
        return dataclasses.replace(self, **changes)
