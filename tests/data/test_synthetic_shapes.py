"""The embedded shapes data: a chosen set of shapes makes its own task (the transfer
experiment pretrains on some shapes and fine-tunes on the others); typos are caught."""

from __future__ import annotations

import pytest
import torch

from assembled_lightning.data.synthetic import SHAPES, SyntheticShapesDataModule, draw_shapes


def test_named_shapes_are_the_labels_in_order() -> None:
    data = SyntheticShapesDataModule(shapes=["cross", "ring", "stripes"], train_size=32)
    assert data.num_classes == 3 and data.classes == ["cross", "ring", "stripes"]
    data.setup("fit")
    assert set(data.train_set.labels.tolist()) == {0, 1, 2}
    # naming the default shapes draws exactly the default images (the quickstart's data)
    default, default_labels = draw_shapes(64, 32, seed=5, num_classes=4)
    named, named_labels = draw_shapes(64, 32, seed=5, shapes=list(SHAPES[:4]))
    assert torch.equal(default, named) and torch.equal(default_labels, named_labels)


def test_typos_and_mismatches_are_explained() -> None:
    with pytest.raises(ValueError, match="did you mean 'ring'"):
        SyntheticShapesDataModule(shapes=["rings", "disc"])
    with pytest.raises(ValueError, match="at least two different"):
        SyntheticShapesDataModule(shapes=["disc", "disc"])
    with pytest.raises(ValueError, match="3 shapes are named"):
        SyntheticShapesDataModule(num_classes=4, shapes=["disc", "ring", "cross"])
    with pytest.raises(ValueError, match=r"num_classes must be 2\.\.6"):
        SyntheticShapesDataModule(num_classes=7)
