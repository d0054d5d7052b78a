"""A small real transfer experiment on the embedded shapes data (issue #12).

Pretrain the quickstart-sized Assemble-ResNet on three shapes (disc, square, triangle), then
train on the three others (cross, ring, stripes) for the same few steps from the pretrained
weights and from scratch: classification top-1 (ClassificationTask, a new head) and retrieval
Recall@1 (RetrievalTask, GeM + cosine softmax, every validation image a query against the
others). Also the zero-shot Recall@1 of the pretrained and of a random backbone, with no
training on the new shapes at all. Everything runs on the CPU in a few minutes.

    python benchmarks/transfer.py --seeds 0 1 2 --output transfer.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from assembled_lightning.data.synthetic import SyntheticShapesDataModule
from assembled_lightning.retrieval import RetrievalTask
from assembled_lightning.tasks import ClassificationTask

PRETRAIN_SHAPES = ["disc", "square", "triangle"]
TRANSFER_SHAPES = ["cross", "ring", "stripes"]
QUICKSTART_MODEL: dict[str, Any] = {
    "model": "assemble_resnet50",
    "model_overrides": {
        "base_width": 8,
        "block_counts": [2, 2, 2, 1],
        "bn_momentum": 0.1,
        "dropblock": True,
    },
    "base_lr": 0.2,
    "batch_denominator": 64,
    "weight_decay": 1e-4,
    "warmup_epochs": 0.5,
    "dropblock_keep_prob": (1.0, 0.9),
}


def trainer(epochs: int) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
    )


def shapes_data(shapes: list[str], train_size: int) -> SyntheticShapesDataModule:
    return SyntheticShapesDataModule(shapes=shapes, train_size=train_size, val_size=512)


def pretrain(folder: Path, epochs: int, seed: int) -> Path:
    """The quickstart's recipe on the pretraining shapes; returns its checkpoint."""
    L.seed_everything(seed, verbose=False)
    task = ClassificationTask(num_classes=3, label_smoothing=0.1, **QUICKSTART_MODEL)
    run = trainer(epochs)
    run.fit(task, shapes_data(PRETRAIN_SHAPES, 4096))
    top1 = float(
        run.validate(task, shapes_data(PRETRAIN_SHAPES, 4096), verbose=False)[0]["val/top1"]
    )
    print(f"pretrained on {PRETRAIN_SHAPES}: val top-1 {top1:.3f}")
    path = folder / f"pretrained_seed{seed}.ckpt"
    run.save_checkpoint(path)
    return path


def classification(weights: str | None, epochs: int, train_size: int, seed: int) -> float:
    L.seed_everything(seed, verbose=False)
    task = ClassificationTask(
        num_classes=3, weights=weights, label_smoothing=0.1, **QUICKSTART_MODEL
    )
    run = trainer(epochs)
    data = shapes_data(TRANSFER_SHAPES, train_size)
    run.fit(task, data)
    return float(run.validate(task, data, verbose=False)[0]["val/top1"])


def retrieval_task(weights: str | None) -> RetrievalTask:
    return RetrievalTask(
        num_classes=3,
        weights=weights,
        pooling="gem",
        head="norm_softmax",
        scale=16.0,
        recall_ks=(1, 2, 4, 8),
        **QUICKSTART_MODEL,
    )


def retrieval(weights: str | None, epochs: int, train_size: int, seed: int) -> float:
    """Recall@1 on the transfer shapes' validation images after training (epochs > 0) or
    zero-shot (epochs = 0)."""
    L.seed_everything(seed, verbose=False)
    task = retrieval_task(weights)
    run = trainer(max(epochs, 1))
    data = shapes_data(TRANSFER_SHAPES, train_size)
    if epochs:
        run.fit(task, data)
    return float(run.validate(task, data, verbose=False)[0]["val/recall@1"])


def summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pretrain-epochs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2, help="transfer epochs")
    parser.add_argument("--train-size", type=int, default=2048, help="transfer images")
    parser.add_argument("--output", type=Path, help="write the Markdown table here too")
    args = parser.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    steps = args.epochs * (args.train_size // 64)
    rows: dict[str, list[float]] = {}
    started = time.time()
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            ckpt = str(pretrain(Path(folder), args.pretrain_epochs, seed))
            for name, value in (
                ("top-1, fine-tuned", classification(ckpt, args.epochs, args.train_size, seed)),
                ("top-1, from scratch", classification(None, args.epochs, args.train_size, seed)),
                ("R@1, fine-tuned", retrieval(ckpt, args.epochs, args.train_size, seed)),
                ("R@1, from scratch", retrieval(None, args.epochs, args.train_size, seed)),
                ("R@1, zero-shot, pretrained", retrieval(ckpt, 0, args.train_size, seed)),
                ("R@1, zero-shot, random init", retrieval(None, 0, args.train_size, seed)),
            ):
                rows.setdefault(name, []).append(value)
                print(f"seed {seed}: {name}: {value:.3f}")
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"threads, torch {torch.__version__}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{time.time() - started:.0f} s",
        f"Pretrained {args.pretrain_epochs} epochs × 4,096 images on {PRETRAIN_SHAPES}; "
        f"transfer to {TRANSFER_SHAPES}: {steps} steps ({args.epochs} epochs × "
        f"{args.train_size} images, batch 64), 512 validation images; seeds {args.seeds} "
        "(mean ± sd)",
        "",
        "| measure (transfer shapes, validation) | value |",
        "|---|---:|",
        *(f"| {name} | {summary(values)} |" for name, values in rows.items()),
    ]
    text = "\n".join(lines)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
