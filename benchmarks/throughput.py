"""Size, cost and inference throughput of every registered model, each measured side by side
with torchvision's ResNet-50 in the same process.

Reproduce the table in ``benchmarks/RESULTS.md`` (from the repository root):

    python benchmarks/throughput.py --output /tmp/throughput.md --json /tmp/throughput.json

For each model selected by ``--models`` (shell-style patterns, default ``*``):

* params (M): trainable parameters, 1000 classes;
* GMACs: multiply-accumulates = FLOPs / 2, as counted by ``torch.utils.flop_counter``
  (convolutions and matrix products), batch 1, at the model's paper eval size
  (``entry.input_size``: 256 px for the BigLittleNet rows, else 224);
* img/s: eval mode, ``torch.inference_mode()``, channels_last, batch ``--batch-size`` (16) at
  ``--image-size`` (224) px. The candidate and torchvision's ``resnet50(weights=None)`` are
  warmed up (``--warmup`` passes each), then timed in alternating rounds (reference, candidate,
  reference, candidate, ...; ``--rounds``, 3). A round runs at least ``--iters`` passes and at
  least ``--min-seconds`` seconds. The table gives the median img/s of each and their ratio,
  which survives a noisy machine far better than the absolute figures.

Other options: ``--device cuda``, ``--threads N`` (``torch.set_num_threads``), ``--amp``
(bf16 autocast on CPU, fp16 on CUDA), ``--compile`` (``torch.compile`` both models).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fnmatch
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from assembled_lightning.models import create_model, get_model_entry, list_models

Forward = Callable[[torch.Tensor], torch.Tensor]
REFERENCE = "torchvision resnet50"


@dataclass(frozen=True)
class Settings:
    """How every model is timed (one set for the whole run)."""

    device: torch.device
    batch_size: int
    image_size: int
    warmup: int
    iters: int
    min_seconds: float
    rounds: int
    amp: bool
    compile: bool


@dataclass
class Result:
    """One table row; ``*_rounds`` keep the per-round img/s for the JSON output."""

    model: str
    description: str
    params_m: float
    gmacs: float
    eval_size: int
    img_per_s: float
    reference_img_per_s: float
    candidate_rounds: list[float] = field(default_factory=list)
    reference_rounds: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.img_per_s / self.reference_img_per_s


# --------------------------------------------------------------------------- size and cost


def trainable_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def gmacs(model: nn.Module, size: int) -> float:
    """Multiply-accumulates (FLOPs / 2) of one ``size``×``size`` image, in billions."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.randn(1, 3, size, size))
    return counter.get_total_flops() / 2e9


# --------------------------------------------------------------------------- timing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(settings: Settings) -> contextlib.AbstractContextManager[object]:
    if not settings.amp:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if settings.device.type == "cpu" else torch.float16
    return torch.autocast(settings.device.type, dtype=dtype)


def prepare(model: nn.Module, settings: Settings) -> Forward:
    model = model.eval().to(settings.device, memory_format=torch.channels_last)
    return torch.compile(model) if settings.compile else model


def run_passes(forward: Forward, images: torch.Tensor, settings: Settings, passes: int) -> None:
    with torch.inference_mode(), autocast(settings):
        for _ in range(passes):
            forward(images)
    synchronize(settings.device)


def images_per_second(forward: Forward, images: torch.Tensor, settings: Settings) -> float:
    """One timed round: at least ``iters`` passes and ``min_seconds`` seconds."""
    synchronize(settings.device)
    passes, start = 0, time.perf_counter()
    with torch.inference_mode(), autocast(settings):
        while True:
            forward(images)
            passes += 1
            synchronize(settings.device)
            elapsed = time.perf_counter() - start
            if passes >= settings.iters and elapsed >= settings.min_seconds:
                return passes * images.shape[0] / elapsed


def interleaved(
    candidate: Forward, reference: Forward, images: torch.Tensor, settings: Settings
) -> tuple[list[float], list[float]]:
    """Per-round img/s of (candidate, reference), timed alternately after a warm-up."""
    run_passes(reference, images, settings, settings.warmup)
    run_passes(candidate, images, settings, settings.warmup)
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(settings.rounds):
        theirs.append(images_per_second(reference, images, settings))
        ours.append(images_per_second(candidate, images, settings))
    return ours, theirs


# --------------------------------------------------------------------------- one model


def benchmark(name: str, reference: Forward, images: torch.Tensor, settings: Settings) -> Result:
    entry = get_model_entry(name)
    model = create_model(name, num_classes=1000)
    params = trainable_params(model)
    cost = gmacs(model, entry.input_size)
    if settings.compile:
        torch.compiler.reset()  # fresh compile caches for each pair; warm-up recompiles both
    ours, theirs = interleaved(prepare(model, settings), reference, images, settings)
    return Result(
        model=name,
        description=entry.description,
        params_m=params / 1e6,
        gmacs=cost,
        eval_size=entry.input_size,
        img_per_s=statistics.median(ours),
        reference_img_per_s=statistics.median(theirs),
        candidate_rounds=ours,
        reference_rounds=theirs,
    )


def selected_models(patterns: list[str]) -> Iterator[str]:
    for name in list_models():
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            yield name


# --------------------------------------------------------------------------- report


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine(device: torch.device) -> dict[str, str]:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none (CPU run)"
    return {
        "date": f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        "platform": platform.platform(),
        "cpu": f"{cpu_model()}, {os.cpu_count()} logical cores",
        "torch": f"{torch.__version__} (torchvision {torchvision.__version__})",
        "threads": str(torch.get_num_threads()),
        "device": f"{device} / {gpu}",
    }


def settings_line(settings: Settings) -> str:
    return (
        f"batch {settings.batch_size}, {settings.image_size} px, channels_last, eval, "
        f"inference_mode, amp={settings.amp}, compile={settings.compile}; "
        f"{settings.warmup} warm-up passes, then {settings.rounds} interleaved rounds "
        f"(reference, candidate) of >= {settings.iters} passes and >= {settings.min_seconds} s; "
        f"medians. Reference: {REFERENCE} (weights=None)."
    )


def markdown(results: list[Result], settings: Settings, info: dict[str, str]) -> str:
    lines = [f"- {key}: {value}" for key, value in info.items()]
    lines += [
        f"- settings: {settings_line(settings)}",
        "- GMACs = multiply-accumulates (FLOPs / 2) at the model's eval size, batch 1",
        "",
        "| model | description | params (M) | GMACs @ eval px | img/s | tv-R50 img/s | ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| `{r.model}` | {r.description} | {r.params_m:.2f} | {r.gmacs:.2f} @ {r.eval_size} | "
        f"{r.img_per_s:.1f} | {r.reference_img_per_s:.1f} | {r.ratio:.2f} |"
        for r in results
    ]
    return "\n".join(lines) + "\n"


def as_json(results: list[Result], settings: Settings, info: dict[str, str]) -> str:
    return json.dumps(
        {
            "machine": info,
            "settings": {**asdict(settings), "device": str(settings.device)},
            "reference": REFERENCE,
            "gmacs_convention": "multiply-accumulates = FLOPs / 2, batch 1, eval size",
            "results": [{**asdict(r), "ratio": r.ratio} for r in results],
        },
        indent=2,
    )


# --------------------------------------------------------------------------- command line


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--models", nargs="+", default=["*"], help="shell-style name patterns (default: all)")
    add("--device", default="cpu", help="cpu (default) or cuda")
    add("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    add("--batch-size", type=int, default=16)
    add("--image-size", type=int, default=224, help="throughput input side (multiple of 32)")
    add("--warmup", type=int, default=1, help="untimed passes per model before the rounds")
    add("--iters", type=int, default=1, help="minimum timed passes per round")
    add("--min-seconds", type=float, default=1.5, help="minimum seconds per round")
    add("--rounds", type=int, default=3, help="interleaved rounds per model")
    add("--amp", action="store_true", help="bf16 autocast on CPU, fp16 on CUDA")
    add("--compile", action="store_true", help="torch.compile candidate and reference")
    add("--output", type=Path, help="also write the Markdown report here")
    add("--json", type=Path, help="also write the results as JSON here")
    return parser.parse_args()


def resolve_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but CUDA is not available")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = Settings(
        device=resolve_device(args.device),
        batch_size=args.batch_size,
        image_size=args.image_size,
        warmup=args.warmup,
        iters=max(args.iters, 1),
        min_seconds=args.min_seconds,
        rounds=args.rounds,
        amp=args.amp,
        compile=args.compile,
    )
    names = list(selected_models(args.models))
    if not names:
        raise SystemExit(f"no registered model matches {args.models}")
    info = machine(settings.device)
    print("\n".join(f"{key}: {value}" for key, value in info.items()), flush=True)

    torch.manual_seed(0)
    shape = (settings.batch_size, 3, settings.image_size, settings.image_size)
    images = torch.randn(shape, device=settings.device).contiguous(
        memory_format=torch.channels_last
    )
    reference = prepare(torchvision.models.resnet50(weights=None), settings)
    start = time.perf_counter()
    results = []
    for name in names:
        result = benchmark(name, reference, images, settings)
        results.append(result)
        print(
            f"{name}: {result.img_per_s:.1f} img/s vs {result.reference_img_per_s:.1f} "
            f"(ratio {result.ratio:.2f}; {time.perf_counter() - start:.0f} s elapsed)",
            flush=True,
        )

    report = markdown(results, settings, info)
    print(f"\n{report}\nTotal: {time.perf_counter() - start:.0f} s for {len(results)} models")
    if args.output:
        args.output.write_text(report)
    if args.json:
        args.json.write_text(as_json(results, settings, info) + "\n")


if __name__ == "__main__":
    main()
