"""The ``assembled-lightning`` console script.

LightningCLI subcommands ``fit``, ``validate``, ``test``, ``predict`` (``--config`` takes a
shipped recipe's name or a YAML path), plus ``recipes`` (list, show or copy the shipped
recipes), ``convert-tf`` (official TF checkpoint → pretrained folder), ``extract-logits``
(teacher logits for distillation), ``make-shards`` (WebDataset shards),
``make-imagenet-c`` (ImageNet-C's layout from a folder of images) and ``export`` (ONNX /
ExportedProgram, FP32 or int8, with a preprocessing sidecar).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .recipes import find_recipe, get_recipe, list_recipes

PROG = "assembled-lightning"
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


class CommandError(Exception):
    """A bad command line: printed as ``assembled-lightning CMD: error: ...``, exit status 2."""


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with a Python literal value (``base_width=8``, ``anti_alias=['sconv']``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def add_override_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.overrides``, values as Python literals."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=parse_override,
        default=[],
        metavar="KEY=VALUE",
        help=help_text,
    )


# --------------------------------------------------------------------------- recipes


def recipes_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "recipes",
        help="list, show or copy the shipped recipes (the paper's runs, the quickstart)",
        description="The recipes ship with the package: run one by name "
        f"(`{PROG} fit --config quickstart`) or copy it to edit it.",
    )
    actions = parser.add_subparsers(dest="action")
    actions.add_parser("list", help="every recipe with its summary (the default)")
    show = actions.add_parser("show", help="print a recipe's YAML")
    show.add_argument("name", help="recipe name, e.g. quickstart or finetune/food101")
    copy = actions.add_parser("copy", help="copy a recipe to a file you can edit")
    copy.add_argument("name", help="recipe name, e.g. quickstart or finetune/food101")
    copy.add_argument(
        "destination", nargs="?", help="file or existing folder (default: ./<name>.yaml)"
    )
    copy.add_argument("--force", action="store_true", help="overwrite an existing file")


def run_recipes(args: argparse.Namespace) -> int:
    if args.action in (None, "list"):
        recipes = list_recipes()
        width = max(len(recipe.name) for recipe in recipes)
        for recipe in recipes:
            print(f"{recipe.name:<{width}}  {recipe.summary}")
        print(f"\nrun one with `{PROG} fit --config NAME`; copy it with `{PROG} recipes copy NAME`")
        return 0
    recipe = get_recipe(args.name)
    if args.action == "show":
        print(recipe.path.read_text(encoding="utf-8"), end="")
        return 0
    destination = Path(args.destination or f"{recipe.path.stem}.yaml")
    if destination.is_dir():
        destination = destination / recipe.path.name
    if destination.exists() and not args.force:
        raise CommandError(f"{destination} exists; pass --force to overwrite it")
    shutil.copyfile(recipe.path, destination)
    print(f"copied {recipe.name} to {destination}")
    return 0


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


# --------------------------------------------------------------------------- convert-tf


def convert_tf_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "convert-tf",
        help="convert an official TF1 checkpoint of clovaai/assembled-cnn",
        description="Convert a TF1 checkpoint (folder, prefix or .index file) of the original "
        "code into model.safetensors + config.json + README.md, and print a parity report.",
    )
    parser.add_argument("checkpoint", help="checkpoint folder, prefix (model.ckpt-N) or .index")
    parser.add_argument("--model", required=True, help="registered model, e.g. assemble_resnet50")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--drop-background",
        action="store_true",
        help="drop the original's background logit 0 (1001 → 1000 classes, torchvision order)",
    )
    add_override_option(
        parser, "config override (repeatable); base width, classes and BL α are inferred"
    )
    parser.add_argument("--preprocessing-type", help="eval preprocessing recorded in the meta")
    parser.add_argument("--golden", help="golden.npz (input_nhwc, logits) to check logits against")


def run_convert_tf(args: argparse.Namespace) -> int:
    from .weights.convert_tf import convert_tf_checkpoint

    with writing_to(args.out, f"{args.out} holds no usable conversion"):
        report = convert_tf_checkpoint(
            args.checkpoint,
            args.model,
            args.out,
            drop_background=args.drop_background,
            overrides=dict(args.overrides),
            preprocessing_type=args.preprocessing_type,
            golden=args.golden,
        )
    print(report)
    print(f"wrote {args.out}")
    return 0


# --------------------------------------------------------------------------- extract-logits


def extract_logits_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "extract-logits",
        help="run a teacher once over a data set and store its logits for distillation",
        description="Run a teacher (eval mode, eval preprocessing) over a DataModule's split and "
        "write a memory-mapped teacher-logit store; an interrupted run resumes.",
    )
    parser.add_argument(
        "--teacher",
        required=True,
        help="registered model name, a pretrained folder, or a .ckpt written by `fit` (its "
        "architecture and classes come from the checkpoint)",
    )
    parser.add_argument(
        "--teacher-weights",
        help="for a registered teacher: weights name, pretrained folder, or .ckpt/.pt checkpoint",
    )
    parser.add_argument(
        "--num-classes", type=int, help="classes of a teacher built without weights"
    )
    parser.add_argument(
        "--data", required=True, help="YAML with class_path and init_args of a DataModule"
    )
    parser.add_argument("--split", help="split to run on (default: the training split)")
    parser.add_argument(
        "--transform", help="teacher eval preprocessing type (default: the DataModule's)"
    )
    parser.add_argument("--out", required=True, help="output folder of the store")
    parser.add_argument("--batch-size", type=int, default=64, help="images per teacher batch")
    parser.add_argument("--num-workers", type=int, default=0, help="loader worker processes")
    parser.add_argument(
        "--chunk-size", type=int, default=1024, help="samples written (and resumed) per chunk"
    )
    parser.add_argument("--device", default="cpu", help="device of the teacher, e.g. cuda")


def image_datamodule(path: str, command: str) -> Any:
    """A DataModule that reads image files (``parse``, ``eval_dataset``) for ``command``."""
    from .data.datamodule_yaml import load_datamodule
    from .data.datamodules import ImageDataModule

    data = load_datamodule(path)  # only our DataModules (data/datamodule_yaml.py)
    if not isinstance(data, ImageDataModule):
        raise CommandError(
            f"{path}: {type(data).__name__} draws its images in memory; {command} needs a "
            "DataModule that reads image files (ImageNetDataModule, Food101DataModule, ...)"
        )
    return data


@contextlib.contextmanager
def writing_to(out: str, kept: str, then: str = "") -> Iterator[None]:
    """Turn a failed write under ``out`` (full disk, read-only or missing folder) into a
    one-line error that names the file, says what was ``kept`` and how to go on; any other
    ``OSError`` (a missing input file) passes unchanged."""
    try:
        yield
    except OSError as error:
        failed = error.filename
        if failed is None:
            raise
        failed_path = Path(os.path.abspath(os.fsdecode(failed)))
        target = Path(os.path.abspath(out))
        if not (failed_path.is_relative_to(target) or target.is_relative_to(failed_path)):
            raise
        raise CommandError(
            f"cannot write {os.fsdecode(failed)}: {error.strerror or error}. {kept}: free space "
            "or fix the folder's permissions (or pick another --out), then run the same command "
            f"again{then}"
        ) from error


def run_extract_logits(args: argparse.Namespace) -> int:
    from .data.teacher_logits import extract_teacher_logits
    from .data.transforms import eval_transform
    from .weights.pretrained import build_model, from_pretrained, model_from_task_checkpoint

    data = image_datamodule(args.data, "extract-logits")
    if Path(args.teacher).is_dir():
        teacher = from_pretrained(args.teacher)
    elif Path(args.teacher).is_file() and args.teacher_weights is None:
        teacher = model_from_task_checkpoint(args.teacher, args.num_classes)
    else:
        options = {"num_classes": args.num_classes} if args.num_classes else {}
        teacher = build_model(args.teacher, weights=args.teacher_weights, **options)
    transform_name = args.transform or data.hparams.eval_type
    transform = eval_transform(transform_name, data.hparams.normalization)
    dataset = data.eval_dataset(args.split, transform)
    kept = f"The chunks already finished are kept in {args.out}"
    with writing_to(args.out, kept, then=" to resume"):
        out = extract_teacher_logits(
            teacher,
            dataset,
            args.out,
            teacher_name=f"{args.teacher} ({args.teacher_weights or 'as built'})",
            transform_name=f"{transform_name}/{data.hparams.normalization}",
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            chunk_size=args.chunk_size,
            device=args.device,
        )
    print(f"wrote teacher logits of {len(dataset)} samples to {out}")
    return 0


# --------------------------------------------------------------------------- make-shards


def make_shards_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "make-shards",
        help="pack a DataModule's split into WebDataset tar shards for streaming",
        description="Write shard-NNNNNN.tar files and index.json from a folder-layout data set; "
        "train from them with the DataModule's train_shards=DIR.",
    )
    parser.add_argument("--data", required=True, help="YAML with class_path and init_args")
    parser.add_argument("--split", help="split to pack (default: the training split)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--samples-per-shard", type=int, default=1000, help="samples per tar")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample permutation")
    parser.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip (and count) files that do not decode as images instead of stopping",
    )


def run_make_shards(args: argparse.Namespace) -> int:
    from .data.shards import read_index, write_shards

    data = image_datamodule(args.data, "make-shards")
    samples, classes = data.parse(args.split or data.train_split)
    kept = (
        f"The shards written so far are in {args.out}, without an index.json (so nothing "
        "reads them)"
    )
    with writing_to(args.out, kept):
        out = write_shards(
            samples,
            classes,
            args.out,
            args.samples_per_shard,
            args.seed,
            root=data.root,
            skip_bad_images=args.skip_bad_images,
        )
    index = read_index(out)
    print(
        f"wrote {index['num_samples']} samples in {len(index['shards'])} shards to {out}"
        + (f" (skipped {index['num_skipped']} bad images)" if index["num_skipped"] else "")
    )
    return 0


# --------------------------------------------------------------------------- robustness


def make_imagenet_c_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "make-imagenet-c",
        help="write ImageNet-C's layout from a folder of images (e.g. ImageNet's val/)",
        description="As the reference generator: Resize(256) + CenterCrop(224), the "
        "corruption, uint8 truncation, JPEG quality 85, into OUT/<corruption>/<severity>/...; "
        "a rerun skips the files already written.",
    )
    parser.add_argument("source", help="folder of images (class folders <wnid>/*.JPEG kept)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--corruptions", nargs="+", help="names (default: all 19)")
    parser.add_argument(
        "--severities", nargs="+", type=int, default=[1, 2, 3, 4, 5], help="(default: 1 … 5)"
    )
    parser.add_argument("--resize", type=int, default=256, help="shorter side (default 256)")
    parser.add_argument("--crop", type=int, default=224, help="centre crop (default 224)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch")
    parser.add_argument("--num-workers", type=int, default=2, help="loader processes")
    parser.add_argument("--device", default="cpu", help="where to corrupt (cpu, cuda, ...)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random corruptions")
    parser.add_argument(
        "--frost-textures",
        help="folder with the reference's frost1.png … frost5.jpg (default: the procedural frost)",
    )


def run_make_imagenet_c(args: argparse.Namespace) -> int:
    from .robustness.generate import make_imagenet_c

    kept = "Every image written so far is complete (partial files end in .partial)"
    with writing_to(args.out, kept):
        summary = make_imagenet_c(
            args.source,
            args.out,
            args.corruptions,
            args.severities,
            resize=args.resize,
            crop=args.crop,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            device=args.device,
            seed=args.seed,
            frost_textures=args.frost_textures,
        )
    print(
        f"{summary.images} images: wrote {summary.written} corrupted files to {args.out}"
        + (f", kept {summary.already_there} already there" if summary.already_there else "")
        + (f", skipped {len(summary.bad_images)} bad images" if summary.bad_images else "")
    )
    return 0


# --------------------------------------------------------------------------- export


def export_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX or an ExportedProgram (FP32, or int8 after calibration)",
        description="Write a model as an ExportedProgram (.pt2) or ONNX (.onnx) with a dynamic "
        "batch, plus a JSON sidecar of its eval preprocessing and class names; an FP32 file is "
        "checked against eager PyTorch (max |diff| printed), an int8 one (--int8: ONNX Runtime "
        "QDQ for onnx, torchao pt2e for x86 Inductor for exported-program) is calibrated on a "
        "DataModule's eval split and its top-1 agreement with FP32 printed. ONNX and int8 need "
        "`pip install 'assembled-lightning[deploy]'`.",
    )
    parser.add_argument(
        "--model", help="registered model, e.g. assemble_resnet50 (default: a .ckpt's own)"
    )
    parser.add_argument(
        "--weights", help="weights name, DEFAULT, a pretrained folder or a `fit` .ckpt"
    )
    parser.add_argument(
        "--format", choices=["exported-program", "onnx"], default="onnx", help="(default: onnx)"
    )
    parser.add_argument("--out", help="output file (default: ./MODEL[.int8].onnx or .pt2)")
    parser.add_argument("--num-classes", type=int, help="classes of a model built without weights")
    add_override_option(parser, "config override (repeatable), e.g. base_width=8")
    parser.add_argument(
        "--eval-type", help="eval preprocessing, e.g. imagenet_224_256 (default: the weights')"
    )
    parser.add_argument(
        "--normalization",
        choices=["original", "torchvision"],
        help="with --eval-type (default: the weights')",
    )
    parser.add_argument("--int8", action="store_true", help="int8 post-training quantization")
    parser.add_argument(
        "--data", help="DataModule YAML whose eval split calibrates --int8 (and checks FP32)"
    )
    parser.add_argument("--split", choices=["val", "test"], default="val", help="(default: val)")
    parser.add_argument(
        "--calibration-batches", type=int, default=8, help="batches observed (default 8)"
    )
    parser.add_argument(
        "--held-out-batches", type=int, default=8, help="batches int8 is judged on (default 8)"
    )
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=0.0,
        help="refuse an int8 model whose top-1 agrees with FP32 less often (e.g. 0.95)",
    )


def run_export(args: argparse.Namespace) -> int:
    from .data.datamodule_yaml import load_datamodule
    from .export.pipeline import export_registered
    from .export.preprocessing import Preprocessing
    from .export.programs import FORMAT_SUFFIX
    from .weights.checkpoint import checkpoint_architecture

    architecture = checkpoint_architecture(args.weights)
    model = args.model or (architecture.model if architecture else None)
    if model is None:
        raise CommandError("--model is required unless --weights is a checkpoint of `fit`")
    if args.normalization and not args.eval_type:
        raise CommandError("--normalization goes with --eval-type (the weights' otherwise)")
    if args.int8 and not args.data:
        raise CommandError("--int8 calibrates on images: give --data DATAMODULE.yaml")
    preprocessing = (
        Preprocessing.named(args.eval_type, args.normalization or "original")
        if args.eval_type
        else None
    )
    suffix = FORMAT_SUFFIX[args.format]
    out = args.out or f"{model}{'.int8' if args.int8 else ''}{suffix}"
    result = export_registered(
        model,
        out,
        weights=args.weights,
        format=args.format,
        num_classes=args.num_classes,
        overrides=dict(args.overrides),
        preprocessing=preprocessing,
        int8=args.int8,
        datamodule=load_datamodule(args.data) if args.data else None,
        calibration_batches=args.calibration_batches,
        held_out_batches=args.held_out_batches,
        split=args.split,
        min_agreement=args.min_agreement,
    )
    print(result.summary())
    return 0


# --------------------------------------------------------------------------- dispatch

COMMANDS: dict[str, tuple[Callable[[Any], None], Callable[[argparse.Namespace], int]]] = {
    "recipes": (recipes_parser, run_recipes),
    "convert-tf": (convert_tf_parser, run_convert_tf),
    "extract-logits": (extract_logits_parser, run_extract_logits),
    "make-shards": (make_shards_parser, run_make_shards),
    "make-imagenet-c": (make_imagenet_c_parser, run_make_imagenet_c),
    "export": (export_parser, run_export),
}


def top_level_parser() -> argparse.ArgumentParser:
    """Every subcommand with its one-line help; LightningCLI parses its own four itself."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Assemble-ResNet (arXiv 2001.06268) for PyTorch and Lightning: train the "
        "paper's recipes, convert the official TF checkpoints, prepare distillation and "
        "streaming data.",
        epilog=f"`{PROG} COMMAND --help` explains a command; `{PROG} fit --model.help "
        "ClassificationTask` and `--data.help Food101DataModule` explain every option.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in LIGHTNING_COMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    for add_parser, _ in COMMANDS.values():
        add_parser(subparsers)
    return parser


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
    from . import predict  # noqa: F401
    from .data import datamodules, synthetic, unlabelled  # noqa: F401
    from .retrieval import datamodules as retrieval_data  # noqa: F401
    from .retrieval import task as retrieval_task  # noqa: F401
    from .robustness import datamodules as robustness_data  # noqa: F401
    from .robustness import imagenet_p, task  # noqa: F401
    from .tasks import ClassificationTask  # noqa: F401

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


def report_error(command: str, error: Exception) -> int:
    print(f"{PROG} {command}: error: {error}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = arguments[0] if arguments else ""
    if command in LIGHTNING_COMMANDS or command.startswith("--config"):
        try:
            arguments = resolve_config_arguments(arguments)
        except CommandError as error:
            return report_error(command, error)
        lightning_cli(arguments)
        return 0
    args = top_level_parser().parse_args(arguments)  # --help, no or an unknown command: exits
    try:
        return COMMANDS[args.command][1](args)
    except (CommandError, OSError, KeyError, ValueError, RuntimeError, TypeError) as e:
        return report_error(args.command, e)


if __name__ == "__main__":
    sys.exit(main())
