"""``assembled-lightning extract-logits``: a teacher's logits over a data set, stored for
distillation."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import image_datamodule, writing_to


def add_parser(subparsers: Any) -> None:
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


def run(args: argparse.Namespace) -> int:
    from ..data.teacher_logits import extract_teacher_logits
    from ..data.transforms import eval_transform
    from ..weights.pretrained import build_model, from_pretrained, model_from_task_checkpoint

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
