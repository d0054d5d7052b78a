"""Counting the bad files a run skips (``skip_bad_images``), and stopping it when a data set is
broken rather than a little damaged (``max_bad_fraction``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Split = Literal["train", "eval"]


@dataclass
class _Counts:
    """Bad files met in one kind of loader (training or evaluation) by this process."""

    skipped: int = 0
    loaded: int = 0
    examples: list[str] = field(default_factory=list)


class BadFileCounter:
    """Adds up the ``num_skipped`` / ``skipped_files`` of each batch, per kind of loader.

    Training batches hold a replacement for each skipped file, evaluation batches do not, so
    the files loaded are the batch plus, in evaluation, its skipped ones. The fraction is judged
    on the files loaded so far but at least on this process's share of an epoch, so that one
    bad file in the first batch cannot stop a run.
    """

    def __init__(self, max_bad_fraction: float = 0.01) -> None:
        if not 0 <= max_bad_fraction <= 1:
            raise ValueError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction}")
        self.max_bad_fraction = max_bad_fraction
        self._counts: dict[str, _Counts] = {}
        self._epoch_share: dict[str, int] = {}

    @property
    def total(self) -> int:
        return sum(counts.skipped for counts in self._counts.values())

    def set_epoch_share(self, split: Split, images: int) -> None:
        """The images this process loads per epoch of ``split`` (the floor of the judgement)."""
        self._epoch_share[split] = images

    def count(self, batch: dict[str, Any], split: Split) -> None:
        """Add the batch's skipped files; past ``max_bad_fraction`` stop with an error that
        names the count, the fraction and examples."""
        skipped = int(batch.get("num_skipped", 0))
        counts = self._counts.setdefault(split, _Counts())
        counts.skipped += skipped
        counts.loaded += len(batch["target"]) + (skipped if split == "eval" else 0)
        for path in batch.get("skipped_files", ()):
            if len(counts.examples) < 3 and path not in counts.examples:
                counts.examples.append(path)
        judged_on = max(counts.loaded, self._epoch_share.get(split, 0))
        if skipped and counts.skipped > self.max_bad_fraction * judged_on:
            name = "training" if split == "train" else "evaluation"
            raise RuntimeError(
                f"too many bad {name} images: {counts.skipped} skipped of {judged_on} "
                f"({counts.skipped / judged_on:.1%}; the images loaded so far, at least this "
                f"process's share of an epoch), more than max_bad_fraction="
                f"{self.max_bad_fraction}; e.g. {', '.join(counts.examples)} "
                "(the warnings above say what is wrong with each). So many bad files means a "
                "broken copy of the data set: re-download or repair it, or raise "
                "max_bad_fraction if this many bad files are expected"
            )
