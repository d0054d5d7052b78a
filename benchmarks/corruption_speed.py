"""Speed of the full ImageNet-C sweep (19 corruptions × 5 severities, 224 px): our batched
``corrupt`` against the reference ``make_imagenet_c.py`` functions, measured in the same run.

Reproduce (from the repository root; the reference environment is described in
``corruption_reference.py``):

    python benchmarks/corruption_speed.py --reference-python refenv/bin/python \\
        --reference-src refsrc/ --json corruption_speed.json

The images are the four photos of ``--photos`` after Resize(256) + CenterCrop(224). Ours:
``--images`` (32) of them (the four repeated) as one float32 batch on ``--device``, every
severity one ``corrupt`` call with a seeded generator, after an untimed warm-up sweep on two
images. The reference: each function called per image, as its generator does, on the
``--reference-images`` (4) photos at every severity, in a worker process of the reference
interpreter. Both sides are limited to ``--threads`` (2) threads (``torch.set_num_threads``;
OpenCV/OpenMP/OpenBLAS in the worker) and timed corruption by corruption, alternately (ours
first on even rows, the reference first on odd ones), so a change of machine load hits both.
img/s counts corrupted images: images × 5 severities / seconds. Without ``--reference-python``
only our side is timed (e.g. on a GPU machine that has no reference environment).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from corruption_reference import PHOTO_DIR, ReferenceWorker, prepared_photos

from assembled_lightning.robustness.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from assembled_lightning.robustness.corruptions.registry import registered


def time_ours(images: torch.Tensor, name: str, seed: int) -> dict[str, float]:
    """Seconds of one ``corrupt`` call per severity, after a warm-up sweep on two images."""
    generator = torch.Generator(images.device).manual_seed(seed)
    for severity in SEVERITIES:
        corrupt(images[:2], name, severity, generator=generator)
    seconds = {}
    for severity in SEVERITIES:
        if images.is_cuda:
            torch.cuda.synchronize(images.device)
        start = time.perf_counter()
        corrupt(images, name, severity, generator=generator)
        if images.is_cuda:
            torch.cuda.synchronize(images.device)
        seconds[str(severity)] = time.perf_counter() - start
    return seconds


def measure(
    images: torch.Tensor,
    name: str,
    reference_first: bool,
    worker: ReferenceWorker | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One table row: our and (with a worker) the reference's seconds per severity."""
    row: dict[str, Any] = {"corruption": name}
    if worker is not None and reference_first:
        reply = worker.request("time", corruption=name, images=args.reference_images)
        row["reference_per_severity_s"] = reply["seconds"]
    row["ours_per_severity_s"] = time_ours(images, name, args.seed)
    if worker is not None and not reference_first:
        reply = worker.request("time", corruption=name, images=args.reference_images)
        row["reference_per_severity_s"] = reply["seconds"]
    row["ours_s"] = sum(row["ours_per_severity_s"].values())
    row["ours_img_s"] = rate(len(images), row["ours_s"])
    if worker is not None:
        row["reference_s"] = sum(row["reference_per_severity_s"].values())
        row["reference_img_s"] = rate(args.reference_images, row["reference_s"])
        row["ratio"] = row["ours_img_s"] / row["reference_img_s"]
    print(f"{name}: {row}", file=sys.stderr, flush=True)
    return row


def rate(images: int, seconds: float) -> float:
    """Corrupted images per second over the five severities."""
    return images * len(SEVERITIES) / seconds


def markdown(rows: list[dict[str, Any]], images: int, ref_images: int, device: str) -> str:
    """The speed table, one row per corruption (the reference columns when timed)."""
    with_ref = "reference_s" in rows[0]
    head = f"| corruption | ours s ({images} img × 5, {device}) | ours img/s |"
    rule = "|---|---:|---:|"
    if with_ref:
        head += f" reference s ({ref_images} img × 5) | reference img/s | ours / reference |"
        rule += "---:|---:|---:|"
    lines = [head, rule]
    for row in rows:
        line = f"| {row['corruption']} | {row['ours_s']:.3f} | {row['ours_img_s']:.1f} |"
        if with_ref:
            line += (
                f" {row['reference_s']:.2f} | {row['reference_img_s']:.2f} | {row['ratio']:.1f}× |"
            )
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-python", type=Path, help="the reference interpreter")
    parser.add_argument("--reference-src", type=Path, help="folder with reference.py, frost*")
    parser.add_argument("--photos", type=Path, default=PHOTO_DIR)
    parser.add_argument("--images", type=int, default=32, help="our batch size")
    parser.add_argument("--reference-images", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--corruptions", nargs="+", default=list(CORRUPTIONS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.reference_python is not None and args.reference_src is None:
        parser.error("--reference-python needs --reference-src")

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    photos = prepared_photos(args.photos)
    repeats = -(-args.images // len(photos))
    batch = torch.from_numpy(np.tile(photos, (repeats, 1, 1, 1))[: args.images])
    images = batch.permute(0, 3, 1, 2).to(device, torch.float32).div_(255)
    available = [name for name in args.corruptions if name in registered()]
    missing = [name for name in args.corruptions if name not in registered()]

    with tempfile.TemporaryDirectory() as scratch, contextlib.ExitStack() as stack:
        worker = None
        info: dict[str, Any] = {}
        if args.reference_python is not None:
            np.save(Path(scratch) / "photos.npy", photos)
            worker = stack.enter_context(
                ReferenceWorker(
                    args.reference_python,
                    args.reference_src,
                    Path(scratch) / "photos.npy",
                    args.threads,
                )
            )
            info = worker.request("info")
        rows = [measure(images, name, i % 2 == 1, worker, args) for i, name in enumerate(available)]

    total: dict[str, Any] = {"corruption": f"**all {len(rows)}**"}
    total["ours_s"] = sum(r["ours_s"] for r in rows)
    total["ours_img_s"] = rate(args.images * len(rows), total["ours_s"])
    if worker is not None:
        total["reference_s"] = sum(r["reference_s"] for r in rows)
        total["reference_img_s"] = rate(args.reference_images * len(rows), total["reference_s"])
        total["ratio"] = total["ours_img_s"] / total["reference_img_s"]
    table = markdown([*rows, total], args.images, args.reference_images, str(device))
    print(table)
    if missing:
        print(f"\nnot registered (skipped): {', '.join(missing)}")
    if args.json is not None:
        result = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": platform.platform(),
            "torch": torch.__version__,
            "device": str(device),
            "threads": args.threads,
            "images": args.images,
            "reference_images": args.reference_images,
            "reference": info,
            "missing": missing,
            "rows": rows,
            "total": total,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
