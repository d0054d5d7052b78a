"""The LightningCLI side of the console script: ``fit``, ``validate``, ``test`` and
``predict``, with ``--config`` taking a shipped recipe's name."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from ..recipes import find_recipe, list_recipes
from .common import CommandError

LIGHTNING_COMMANDS = {
    "fit": "train a model: --config RECIPE (a name from `recipes`, or a YAML path), then "
    "--trainer.* / --model.* / --data.* overrides",
    "validate": "evaluate a model on the validation split (--ckpt_path to load a checkpoint)",
    "test": "evaluate a model on the test split (--ckpt_path to load a checkpoint); with "
    "RobustnessTask, on ImageNet-C / -P or corrupted data (--config imagenet_c)",
    "predict": "class probabilities of a data set or a folder of images (--config "
    "predict/folder --ckpt_path CKPT --data.root=FOLDER); TopKPredictionWriter writes the top-k "
    "named classes to CSV / JSON",
}


def resolve_config_arguments(arguments: list[str]) -> list[str]:
    """Replace a recipe name after ``--config`` by its path; a value that is neither an
    existing file, a recipe name nor inline YAML fails here with the list of recipes."""

    def resolve(value: str) -> str:
        if Path(value).exists() or any(mark in value for mark in ":{\n"):
            return value
        recipe = find_recipe(value)
        if recipe is None:
            known = ", ".join(r.name for r in list_recipes())
            raise CommandError(
                f"--config {value}: no such file and no shipped recipe of that name; "
                f"recipes: {known}"
            )
        return str(recipe.path)

    resolved: list[str] = []
    for index, argument in enumerate(arguments):
        if argument.startswith("--config="):
            argument = "--config=" + resolve(argument.partition("=")[2])
        elif index > 0 and arguments[index - 1] == "--config":
            argument = resolve(argument)
        resolved.append(argument)
    return resolved


def silence_third_party_notices() -> None:
    """Drop two messages a user can do nothing about: Lightning's advert for its cloud logger,
    and torch's deprecation of ``LeafSpec``, which Lightning 2.6 still uses."""
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not record.getMessage().startswith("💡 Tip")
    )


def lightning_cli(args: list[str]) -> None:
    """LightningCLI in subclass mode for tasks and DataModules, with ``data.num_classes``
    linked into the task (fit / validate / test / predict, --config, --print_config).

    The model's base class is ``LightningModule``, the common base of the training tasks (every
    ``BaseTask``: ``ClassificationTask`` or one's own, by short name or class_path) and of
    ``RobustnessTask``, which only evaluates and so is no ``BaseTask``."""
    import lightning as L
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    # imported for their subclasses, so that short class_path names resolve
    from .. import predict  # noqa: F401
    from ..data import datamodules, synthetic, unlabelled  # noqa: F401
    from ..retrieval import datamodules as retrieval_data  # noqa: F401
    from ..retrieval import task as retrieval_task  # noqa: F401
    from ..robustness import datamodules as robustness_data  # noqa: F401
    from ..robustness import imagenet_p, task  # noqa: F401
    from ..tasks import ClassificationTask  # noqa: F401

    silence_third_party_notices()

    class AssembledCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.link_arguments(
                "data.num_classes", "model.init_args.num_classes", apply_on="instantiate"
            )

        def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
            # main() always hands over the whole command line (sys.argv[1:] when run as the
            # console script), so Lightning's warning about args *and* sys.argv is spurious.
            self.config = parser.parse_args(args)

    AssembledCLI(
        L.LightningModule,  # any BaseTask (fit) or RobustnessTask (test), by name or class_path
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        save_config_kwargs={"overwrite": True},
    )
