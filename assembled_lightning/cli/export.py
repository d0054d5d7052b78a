"""``assembled-lightning export``: ONNX or an ExportedProgram, FP32 or int8, with the eval
preprocessing written beside it."""

from __future__ import annotations

import argparse
from typing import Any

from .common import CommandError, add_override_option


def add_parser(subparsers: Any) -> None:
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


def run(args: argparse.Namespace) -> int:
    from ..data.datamodule_yaml import load_datamodule
    from ..export.pipeline import export_registered
    from ..export.preprocessing import Preprocessing
    from ..export.programs import FORMAT_SUFFIX
    from ..weights.checkpoint import checkpoint_architecture

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
