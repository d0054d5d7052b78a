"""How close our corruptions are to the reference ``make_imagenet_c.py``: every corruption ×
severity on the same four photos, both sides truncated to uint8 as the released dataset is.

Reproduce (from the repository root; the reference environment is described in
``corruption_reference.py``):

    python benchmarks/corruption_fidelity.py --reference-python refenv/bin/python \\
        --reference-src refsrc/ --json corruption_fidelity.json

Three kinds of comparison, one table row per corruption:

* deterministic (contrast, brightness, saturate, pixelate, jpeg_compression, defocus_blur,
  gaussian_blur, zoom_blur): pixel by pixel;
* pinned (fog, frost, motion_blur): pixel by pixel with the reference's own random draws. The
  worker seeds NumPy, draws exactly what the reference call is about to draw (fog's plasma map,
  frost's texture crop, motion blur's angle), re-seeds and runs the call; ours gets those draws
  as ``plasma=`` / ``texture=`` / ``angle=`` (motion blur: our torch port of ImageMagick's kernel
  against the real Wand/ImageMagick output);
* every corruption, ``--seeds`` (8) seeds each side: the distribution of the change, per
  channel mean and std of (corrupted − clean) in grey levels, and the fractions of values
  changed, at 0 and at 255, each averaged over seeds and then over the 5 severities (the JSON
  has every severity). Frost's row uses the reference's textures (``frost_textures=`` the
  ``--reference-src`` folder); "frost (procedural)" is our default texture.

Pixel columns: the largest |ours − reference| over all values, and the smallest fraction of
values within 1 level over the 4 photos × 5 severities (× seeds). Ours runs in ``--dtype``
(float64: the reference computes in float64) on ``--device``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from corruption_reference import PHOTO_DIR, ReferenceWorker, prepared_photos

from assembled_lightning.robustness.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from assembled_lightning.robustness.corruptions.registry import registered

DETERMINISTIC = (
    "contrast",
    "brightness",
    "saturate",
    "pixelate",
    "jpeg_compression",
    "defocus_blur",
    "gaussian_blur",
    "zoom_blur",
)
PINNED = ("fog", "frost", "motion_blur")
OUR_SEED_OFFSET = 10_000  # our generator seeds, away from the reference's NumPy ones


def as_uint8(images: torch.Tensor) -> np.ndarray:
    """N×3×H×W in [0, 1] → N×H×W×3 uint8 by truncation, the reference's ``np.uint8``."""
    scaled = images.detach().cpu().double().permute(0, 2, 3, 1).numpy() * 255
    return np.uint8(np.clip(scaled, 0, 255))


def run_ours(batch: torch.Tensor, name: str, severity: int, seed: int, **inputs: Any) -> np.ndarray:
    """Our ``corrupt`` on the batch with a seeded generator, as uint8 N×H×W×3."""
    generator = torch.Generator(batch.device).manual_seed(seed)
    return as_uint8(corrupt(batch, name, severity, generator=generator, **inputs))


def pixel_difference(ours: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Over S×N×H×W×3 outputs: max and mean |diff|, mean ours − reference, the worst
    per-image fraction within 1 level and the overall one."""
    diff = np.abs(ours.astype(np.int16) - reference.astype(np.int16))
    per_image = (diff <= 1).mean(axis=(-3, -2, -1))
    return {
        "max_abs": int(diff.max()),
        "mean_abs": float(diff.mean()),
        "mean_signed": float((ours.astype(np.float64) - reference).mean()),
        "within_1_worst": float(per_image.min()),
        "within_1": float((diff <= 1).mean()),
    }


def distribution(clean: np.ndarray, outputs: np.ndarray) -> dict[str, Any]:
    """Statistics of the change, per seed (leading axis of ``outputs``), averaged over seeds."""
    delta = outputs.astype(np.float64) - clean.astype(np.float64)
    return {
        "mean": delta.mean(axis=(1, 2, 3)).mean(axis=0).tolist(),
        "std": delta.std(axis=(1, 2, 3)).mean(axis=0).tolist(),
        "changed": float((outputs != clean).mean()),
        "at_0": float((outputs == 0).mean()),
        "at_255": float((outputs == 255).mean()),
    }


def pin_inputs(name: str, pins: Any, seed_index: int, dtype: torch.dtype) -> dict[str, Any]:
    """The reference's draws for one seed (all photos) as our ``corrupt`` inputs."""
    if name == "fog":
        return {"plasma": torch.from_numpy(pins["plasma"][seed_index]).to(dtype)}
    if name == "frost":
        texture = torch.from_numpy(pins["texture"][seed_index]).permute(0, 3, 1, 2)
        return {"texture": texture.to(dtype) / 255}
    return {"angle": torch.from_numpy(pins["angle"][seed_index])}


def compare(
    name: str,
    severity: int,
    batch: torch.Tensor,
    clean: np.ndarray,
    worker: ReferenceWorker,
    args: argparse.Namespace,
    scratch: Path,
) -> dict[str, Any]:
    """One corruption at one severity: pixel comparison (where it applies) and statistics."""
    seeds = [0] if name in DETERMINISTIC else list(range(args.seeds))
    out = str(scratch / f"{name}_{severity}.npz")
    op = "pinned" if name in PINNED else "corrupt"
    reply = worker.request(op, corruption=name, severity=severity, seeds=seeds, out=out)
    reference = np.load(reply["path"])
    extra: dict[str, Any] = {"frost_textures": args.reference_src} if name == "frost" else {}
    ours = np.stack(
        [run_ours(batch, name, severity, OUR_SEED_OFFSET + seed, **extra) for seed in seeds]
    )
    result: dict[str, Any] = {
        "ours": distribution(clean, ours),
        "reference": distribution(clean, reference["outputs"]),
    }
    if name in DETERMINISTIC:
        result["pixels"] = pixel_difference(ours, reference["outputs"])
    elif name in PINNED:
        pinned = np.stack(
            [
                run_ours(batch, name, severity, 0, **pin_inputs(name, reference, i, batch.dtype))
                for i in range(len(seeds))
            ]
        )
        result["pixels"] = pixel_difference(pinned, reference["outputs"])
        if name == "frost":
            procedural = np.stack(
                [run_ours(batch, name, severity, OUR_SEED_OFFSET + seed) for seed in seeds]
            )
            result["ours_procedural"] = distribution(clean, procedural)
    return result


def summary(per_severity: dict[str, dict[str, Any]], side: str) -> dict[str, Any]:
    """Statistics of ``side`` averaged over the severities."""
    stats = [entry[side] for entry in per_severity.values()]
    keys = ("mean", "std", "changed", "at_0", "at_255")
    return {k: np.mean([s[k] for s in stats], axis=0).tolist() for k in keys}


def row(label: str, kind: str, per_severity: dict[str, dict[str, Any]], ours_key: str) -> str:
    """One Markdown row: pixel columns (where ``kind`` compares pixels) then ours / reference
    statistics (``ours_key``: which of our runs)."""
    ours, ref = summary(per_severity, ours_key), summary(per_severity, "reference")
    pixel_cells = "– | – | –"
    if kind != "statistics":
        pixels = [entry["pixels"] for entry in per_severity.values()]
        worst = min(p["within_1_worst"] for p in pixels)
        mean_abs = np.mean([p["mean_abs"] for p in pixels])
        pixel_cells = f"{max(p['max_abs'] for p in pixels)} | {worst:.4f} | {mean_abs:.3f}"

    def channels(values: list[float], sign: str) -> str:
        return "/".join(f"{v:{sign}.1f}" for v in values)

    def pair(key: str) -> str:
        return f"{ours[key]:.3f} / {ref[key]:.3f}"

    return (
        f"| {label} | {kind} | {pixel_cells} | {channels(ours['mean'], '+')} "
        f"| {channels(ref['mean'], '+')} | {channels(ours['std'], '')} "
        f"| {channels(ref['std'], '')} | "
        f"{pair('changed')} | {pair('at_0')} | {pair('at_255')} |"
    )


def markdown(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The fidelity table, one row per corruption (two for frost)."""
    lines = [
        "| corruption | compared | max abs diff | within 1 level (worst) | mean abs diff "
        "| mean Δ ours (R/G/B) | mean Δ ref | std Δ ours | std Δ ref "
        "| changed ours / ref | at 0 ours / ref | at 255 ours / ref |",
        "|---|---|---:|---:|---:|---|---|---|---|---|---|---|",
    ]
    for name, per_severity in results.items():
        kind = "pixels" if name in DETERMINISTIC else "pinned" if name in PINNED else "statistics"
        lines.append(row(name, kind, per_severity, "ours"))
        if name == "frost":
            lines.append(row("frost (procedural)", "statistics", per_severity, "ours_procedural"))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-python", type=Path, required=True)
    parser.add_argument("--reference-src", type=Path, required=True)
    parser.add_argument("--photos", type=Path, default=PHOTO_DIR)
    parser.add_argument("--seeds", type=int, default=8, help="seeds per random corruption")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--corruptions", nargs="+", default=list(CORRUPTIONS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    clean = prepared_photos(args.photos)
    batch = torch.from_numpy(clean).permute(0, 3, 1, 2).to(args.device, getattr(torch, args.dtype))
    batch = batch / 255
    available = [name for name in args.corruptions if name in registered()]
    missing = [name for name in args.corruptions if name not in registered()]
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        np.save(scratch / "photos.npy", clean)
        with ReferenceWorker(
            args.reference_python, args.reference_src, scratch / "photos.npy", args.threads
        ) as worker:
            info = worker.request("info")
            for name in available:
                results[name] = {
                    str(s): compare(name, s, batch, clean, worker, args, scratch)
                    for s in SEVERITIES
                }
                print(f"{name} done", flush=True)
    print(markdown(results))
    if missing:
        print(f"\nnot registered (skipped): {', '.join(missing)}")
    if args.json is not None:
        result = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "dtype": args.dtype,
            "device": args.device,
            "seeds": args.seeds,
            "reference": info,
            "missing": missing,
            "results": results,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
