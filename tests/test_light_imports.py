"""A torch.hub user needs only what ``hubconf.dependencies`` names: the models, the weights and
their eval transform import and work with Lightning, torchmetrics, scipy, jsonargparse and kornia
blocked (each run in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("lightning", "pytorch_lightning", "torchmetrics", "scipy", "jsonargparse", "kornia")

BLOCKER = f"""
import importlib.abc, sys

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ModuleNotFoundError(f"blocked for this test: {{name}}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
"""


def run_blocked(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(BLOCKER + textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=REPO_ROOT,  # hubconf.py is imported from the checkout, as torch.hub does
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_blocker_really_blocks(tmp_path: Path) -> None:
    result = run_blocked("import assembled_lightning.tasks\n", tmp_path)
    assert result.returncode != 0
    assert "blocked for this test: lightning" in result.stderr


def test_hub_models_weights_and_transforms_without_lightning(tmp_path: Path) -> None:
    result = run_blocked(
        f"""
        import sys
        import torch
        sys.path.insert(0, {str(REPO_ROOT)!r})
        import hubconf
        import assembled_lightning.models
        import assembled_lightning.weights as weights

        model = hubconf.assemble_resnet50(num_classes=10, base_width=8).eval()
        folder = weights.save_pretrained(model, {str(tmp_path / "folder")!r},
                                         architecture="assemble_resnet50")
        again = hubconf.assemble_resnet50(weights=str(folder)).eval()
        images = torch.rand(2, 3, 64, 64)
        with torch.no_grad():
            assert torch.equal(model(images), again(images))
        transform = weights.get_weights("assemble_resnet50.tf_in1k").transforms()
        assert transform(torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)).shape == (
            3, 256, 256)
        for name in {HEAVY!r}:
            assert name not in sys.modules, name
        assert set(hubconf.dependencies) >= {{"torch", "safetensors", "huggingface_hub"}}
        print("ok")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


@pytest.mark.parametrize(
    "module",
    ["assembled_lightning.data.transforms", "assembled_lightning.data.decode"],
)
def test_data_helpers_import_without_lightning(module: str, tmp_path: Path) -> None:
    result = run_blocked(f"import {module}\n", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


def test_datamodules_still_load_lazily_by_name() -> None:
    import lightning as L

    from assembled_lightning import data

    assert issubclass(data.Food101DataModule, L.LightningDataModule)
    assert issubclass(data.SyntheticShapesDataModule, L.LightningDataModule)
    assert set(data.__all__) >= {"ImageNetDataModule", "TeacherLogitStore", "eval_transform"}
    with pytest.raises(AttributeError, match="NoSuchModule"):
        _ = data.NoSuchModule
