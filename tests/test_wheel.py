"""A normal (non-editable) install works away from the checkout: the wheel carries every module
and every recipe, its console script lists the commands and recipes, and the quickstart runs by
name with ``fast_dev_run`` from a folder outside the checkout.

The wheel goes into a fresh virtualenv of its own. So that the test does not download and unpack
PyTorch a second time (~5 GB), that virtualenv sees the dependencies of the running one through a
``.pth`` path line; such a line does not run the editable install's import hook, so
``assembled_lightning`` can only come from the wheel (asserted). That every dependency is
declared is proven by CI itself, which installs the package into a brand-new virtualenv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCE_RECIPES = sorted(
    path.relative_to(REPO_ROOT).as_posix()
    for path in (REPO_ROOT / "assembled_lightning" / "recipes").rglob("*.yaml")
)


def run(command: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel`` of a copy of the checkout (the build leaves no files in the checkout)."""
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    shutil.copytree(
        REPO_ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", "*.egg-info", "build", "dist", "__pycache__", ".*_cache", "lightning_logs"
        ),
    )
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",  # setuptools comes from the dev extra: no download
            "--wheel-dir",
            work / "dist",
            source,
        ],
        cwd=work,
    )
    (built,) = (work / "dist").glob("assembled_lightning-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding the wheel; returns its ``bin`` folder."""
    venv = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv)
    bin_dir = venv / "bin"
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    shared = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (purelib / "dependencies-of-the-test-runner.pth").write_text("\n".join(sorted(shared)))
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            bin_dir / "python",
            "install",
            "--no-deps",
            "--no-index",
            wheel,
        ],
        cwd=venv,
    )
    return bin_dir


def test_wheel_holds_every_module_and_recipe(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {
        path.relative_to(REPO_ROOT).as_posix()
        for path in (REPO_ROOT / "assembled_lightning").rglob("*.py")
    }
    assert modules <= names, sorted(modules - names)
    assert SOURCE_RECIPES and set(SOURCE_RECIPES) <= names, sorted(set(SOURCE_RECIPES) - names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = zipfile.ZipFile(wheel).read(metadata).decode()
    for dependency in ("torch", "lightning", "jsonargparse", "torchmetrics", "safetensors"):
        assert f"Requires-Dist: {dependency}" in requires, dependency


@pytest.mark.slow
def test_installed_wheel_runs_the_quickstart_outside_the_checkout(
    wheel_env: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": "", "HF_HUB_OFFLINE": "1"}
    where = run(
        [
            wheel_env / "python",
            "-c",
            "import assembled_lightning; print(assembled_lightning.__file__)",
        ],
        cwd=tmp_path,
        env=env,
    )
    assert str(wheel_env.parent) in where and str(REPO_ROOT) not in where, where

    script = wheel_env / "assembled-lightning"
    commands = run([script, "--help"], cwd=tmp_path, env=env)
    for command in ("fit", "recipes", "convert-tf", "extract-logits", "make-shards"):
        assert command in commands
    listing = run([script, "recipes"], cwd=tmp_path, env=env)
    for path in SOURCE_RECIPES:
        name = path.removeprefix("assembled_lightning/recipes/").removesuffix(".yaml")
        assert name in listing

    output = run(
        [
            script,
            "fit",
            "--config",
            "quickstart",
            "--trainer.fast_dev_run=true",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path / 'logs'}",
            f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}",
        ],
        cwd=tmp_path,
        env=env,
    )
    assert "fast_dev_run" in output  # Lightning's note that it ran one batch of each loop
    run([script, "recipes", "copy", "quickstart", "mine.yaml"], cwd=tmp_path, env=env)
    assert (tmp_path / "mine.yaml").read_text().startswith("# The quickstart")
