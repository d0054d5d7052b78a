"""The console script's surface: every subcommand discoverable from ``--help``, recipes by name,
help text for every option of the task and the DataModules, no spurious warnings."""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jsonargparse import ArgumentParser

from assembled_lightning import data, retrieval
from assembled_lightning.cli import main, resolve_config_arguments
from assembled_lightning.recipes import find_recipe
from assembled_lightning.tasks import ClassificationTask

RECIPES_DIR = Path(__file__).resolve().parents[1] / "assembled_lightning" / "recipes"
SUBCOMMANDS = (
    "fit",
    "validate",
    "test",
    "predict",
    "recipes",
    "convert-tf",
    "extract-logits",
    "make-shards",
)


def test_help_lists_every_subcommand_with_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    for command in SUBCOMMANDS:
        index = next(i for i, line in enumerate(lines) if line.strip().split(" ")[0] == command)
        described = lines[index].strip().removeprefix(command).strip() or lines[index + 1].strip()
        assert len(described) > 10, command


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_recipes_lists_every_shipped_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recipes"]) == 0
    listing = capsys.readouterr().out
    files = sorted(RECIPES_DIR.rglob("*.yaml"))
    assert len(files) >= 12  # quickstart, six ImageNet rows, five fine-tunes
    for path in files:
        name = path.relative_to(RECIPES_DIR).with_suffix("").as_posix()
        first_comment = path.read_text().splitlines()[0].lstrip("# ").rstrip(" :,;")
        assert f"{name}  " in listing and first_comment in listing, name


def test_recipes_show_and_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    food = RECIPES_DIR / "finetune" / "food101.yaml"
    assert main(["recipes", "show", "finetune/food101"]) == 0
    assert capsys.readouterr().out == food.read_text()
    target = tmp_path / "mine.yaml"
    assert main(["recipes", "copy", "food101", str(target)]) == 0
    assert target.read_text() == food.read_text()
    assert main(["recipes", "copy", "food101", str(target)]) == 2  # no silent overwrite
    assert "--force" in capsys.readouterr().err
    assert main(["recipes", "copy", "quickstart", str(target), "--force"]) == 0
    assert target.read_text() == (RECIPES_DIR / "quickstart.yaml").read_text()
    assert main(["recipes", "copy", "food101", str(tmp_path)]) == 0  # into a folder
    assert (tmp_path / "food101.yaml").is_file()


def test_config_takes_a_recipe_name_a_stem_or_a_path(tmp_path: Path) -> None:
    quickstart = str(RECIPES_DIR / "quickstart.yaml")
    food = str(RECIPES_DIR / "finetune" / "food101.yaml")
    assert resolve_config_arguments(["fit", "--config", "quickstart"]) == [
        "fit",
        "--config",
        quickstart,
    ]
    assert resolve_config_arguments(["fit", "--config=finetune/food101"]) == [
        "fit",
        f"--config={food}",
    ]
    assert resolve_config_arguments(["fit", "--config", "food101.yaml"])[-1] == food
    own = tmp_path / "quickstart"  # an existing file wins over a recipe of the same name
    own.write_text("seed_everything: 1\n")
    assert resolve_config_arguments(["fit", "--config", str(own)])[-1] == str(own)
    inline = "{trainer: {max_epochs: 1}}"
    assert resolve_config_arguments(["fit", "--config", inline])[-1] == inline


@pytest.mark.parametrize(
    "name", ["nope", "finetune/../quickstart", "../recipes/quickstart", "/etc/passwd-x"]
)
def test_unknown_or_escaping_recipe_names_fail_with_the_list(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert find_recipe(name) is None
    assert main(["fit", "--config", name]) == 2
    error = capsys.readouterr().err
    assert "no shipped recipe" in error and "quickstart" in error and "finetune/food101" in error


def option_classes() -> list[type]:
    modules = [getattr(data, name) for name in data.__all__ if name.endswith("DataModule")]
    retrieval_modules = [
        getattr(retrieval, name) for name in retrieval.__all__ if name.endswith("DataModule")
    ]
    return [ClassificationTask, retrieval.RetrievalTask, *modules, *retrieval_modules]


@pytest.mark.parametrize("component", option_classes(), ids=lambda c: c.__name__)
def test_every_option_has_a_help_text(component: type) -> None:
    parser = ArgumentParser()
    parser.add_class_arguments(component, "x")
    helps = {action.dest.removeprefix("x."): action.help for action in parser._actions}
    parameters = set(helps) - {"help", "x"}
    own = {
        name
        for name, parameter in inspect.signature(component.__init__).parameters.items()
        if name != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD
    }
    assert own <= parameters  # the options include the class's own arguments ...
    if component is not data.ImageDataModule and issubclass(component, data.ImageDataModule):
        assert {"batch_size", "autoaugment", "skip_bad_images"} <= parameters  # ... and **kwargs'
    undocumented = sorted(name for name in parameters if not (helps[name] or "").strip())
    assert not undocumented, f"{component.__name__}: no help text for {undocumented}"


def test_console_script_prints_no_spurious_warning(tmp_path: Path) -> None:
    script = shutil.which("assembled-lightning")
    if script is None:
        pytest.fail("the assembled-lightning console script is not installed: pip install -e .")
    result = subprocess.run(
        [
            sys.executable,
            script,
            "fit",
            "--config",
            "quickstart",
            "--trainer.fast_dev_run=true",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            f"--trainer.default_root_dir={tmp_path}",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "fast_dev_run" in output
    for noise in ("Warning", "warn(", "not recommended to provide both", "Tip:"):
        assert noise not in output, output[-3000:]
    warned = re.findall(r"^\S+\.py:\d+: .*$", output, flags=re.MULTILINE)  # warnings' format
    assert not warned, warned
