"""Size, cost, inference and training throughput and memory per forward of every registered
model, each measured side by side with torchvision's ResNet-50 in the same process.

Reproduce the tables in ``benchmarks/RESULTS.md`` (from the repository root):

    python benchmarks/throughput.py --output throughput.md --json throughput.json

A smoke run (``assemble_resnet50`` only, one short round of everything):

    python benchmarks/throughput.py --quick

For each model selected by ``--models`` (shell-style patterns, default ``*``):

* params (M): trainable parameters, 1000 classes; GMACs: multiply-accumulates = FLOPs / 2 as
  counted by ``torch.utils.flop_counter``, batch 1, at the model's paper eval size
  (``entry.input_size``: 256 px for the BigLittleNet rows, else 224);
* inference img/s (eval, ``torch.inference_mode``, channels_last, batch ``--batch-size`` 16 at
  ``--image-size`` 224 px) of three forms of the model: eager, eager-fused
  (``fuse_for_inference``: every BN folded into its conv) and ``torch.compile`` of the fused
  model; against torchvision's ``resnet50(weights=None)`` plain, BN-folded
  (``torch.fx.experimental.optimization.fuse``) and compiled-folded;
* memory per forward (batch 16, eager and fused, and torchvision's plain and folded): on CPU,
  the allocations of one forward as the profiler records them
  (``torch.profiler.profile(profile_memory=True)``): *allocated* = the sum of the sizes of every
  allocation the forward makes (what an allocator must serve, and the issue's figure), *peak* =
  the most bytes alive at once above what was alive before. On CUDA the same two figures come
  from the caching allocator's statistics (``allocated_bytes.all.allocated`` and
  ``torch.cuda.max_memory_allocated``);
* training img/s: forward + cross-entropy + backward + SGD step (momentum 0.9), train mode,
  channels_last, batch ``--train-batch-size`` 8, DropBlock at keep_prob 0.9 (the recipes' final
  value) where the model has it; against torchvision's ResNet-50.

Every form of the model and the references are warmed up (``--warmup`` passes each), then timed
in ``--rounds`` interleaved rounds (each round times every contestant once, in an order rotated
from round to round); a round runs at least ``--iters`` passes and ``--min-seconds`` seconds.
The tables give medians and the ratios of medians, which survive a noisy machine far better
than the absolute figures. ``--quick`` is one round of one pass each (default model
``assemble_resnet50``; options given explicitly win): a check that the script runs, not a
measurement. ``--no-compile`` skips the compiled contestants, whose compilation dominates a
CPU run (each model and torchvision's are compiled again for every model). Other options:
``--device cuda``, ``--threads N``, ``--amp`` (bf16 autocast on CPU, fp16 on CUDA),
``--batch-size``, ``--train-batch-size``, ``--image-size``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fnmatch
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch._C._profiler import _EventType  # the allocation events of the profiler's event tree
from torch.fx.experimental.optimization import fuse as fx_fuse
from torch.utils.flop_counter import FlopCounterMode

from assembled_lightning.models import (
    Backbone,
    create_model,
    fuse_for_inference,
    get_model_entry,
    list_models,
)

Forward = Callable[[torch.Tensor], torch.Tensor]
Step = Callable[[], object]
REFERENCE = "torchvision resnet50 (weights=None)"
INFERENCE_FORMS = ("eager", "fused", "compiled")
DROPBLOCK_KEEP_PROB = 0.9


@dataclass(frozen=True)
class Settings:
    """How every model is timed (one set for the whole run)."""

    device: torch.device
    batch_size: int
    train_batch_size: int
    image_size: int
    warmup: int
    iters: int
    min_seconds: float
    rounds: int
    amp: bool
    compile: bool


@dataclass(frozen=True)
class Memory:
    """Bytes allocated by one forward, in total and at most alive at once."""

    allocated: int
    peak: int


@dataclass
class Result:
    """One model: per-round img/s of every contestant (ours and the references) and memory."""

    model: str
    description: str
    params_m: float
    gmacs: float
    eval_size: int
    inference: dict[str, list[float]] = field(default_factory=dict)
    training: dict[str, list[float]] = field(default_factory=dict)
    memory: dict[str, Memory] = field(default_factory=dict)

    def median(self, kind: str, name: str) -> float:
        rounds = getattr(self, kind).get(name)
        return statistics.median(rounds) if rounds else float("nan")

    def ratio(self, kind: str, ours: str, reference: str) -> float:
        return self.median(kind, ours) / self.median(kind, reference)


# --------------------------------------------------------------------------- size and cost


def trainable_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def gmacs(model: nn.Module, size: int) -> float:
    """Multiply-accumulates (FLOPs / 2) of one ``size``×``size`` image, in billions."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.randn(1, 3, size, size))
    return counter.get_total_flops() / 2e9


# --------------------------------------------------------------------------- the contestants


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(settings: Settings) -> contextlib.AbstractContextManager[object]:
    if not settings.amp:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if settings.device.type == "cpu" else torch.float16
    return torch.autocast(settings.device.type, dtype=dtype)


def to_device(model: nn.Module, settings: Settings) -> nn.Module:
    return model.to(settings.device).to(memory_format=torch.channels_last)


def inference_forms(
    model: nn.Module, settings: Settings, fuse: Callable[[nn.Module], nn.Module]
) -> dict[str, Forward]:
    """The eager, fused and (unless ``--no-compile``) compiled-fused forms of a model."""
    eager = to_device(model.eval(), settings)
    fused = to_device(fuse(eager), settings)
    forms: dict[str, Forward] = {"eager": eager, "fused": fused}
    if settings.compile:
        forms["compiled"] = torch.compile(fused)
    return forms


def inference_step(forward: Forward, images: torch.Tensor, settings: Settings) -> Step:
    def step() -> None:
        with torch.inference_mode(), autocast(settings):
            forward(images)

    return step


def training_step(model: nn.Module, images: torch.Tensor, settings: Settings) -> Step:
    """One SGD step on a fixed batch with random labels."""
    model = to_device(model.train(), settings)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    labels = torch.randint(0, 1000, (images.shape[0],), device=settings.device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(settings):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()

    return step


# --------------------------------------------------------------------------- measuring


def images_per_second(step: Step, batch: int, settings: Settings) -> float:
    """One timed round: at least ``iters`` steps and ``min_seconds`` seconds."""
    synchronize(settings.device)
    steps, start = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        synchronize(settings.device)
        elapsed = time.perf_counter() - start
        if steps >= settings.iters and elapsed >= settings.min_seconds:
            return steps * batch / elapsed


def interleaved(steps: dict[str, Step], batch: int, settings: Settings) -> dict[str, list[float]]:
    """Per-round img/s of every step after a warm-up; each round times each step once, starting
    one further along the list every round so that no contestant always follows the same one."""
    for step in steps.values():
        for _ in range(settings.warmup):
            step()
    names = list(steps)
    rounds: dict[str, list[float]] = {name: [] for name in names}
    for index in range(settings.rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            rounds[name].append(images_per_second(steps[name], batch, settings))
    return rounds


def _tree(nodes: list[Any]) -> Iterator[Any]:
    for node in nodes:
        yield node
        yield from _tree(node.children)


def forward_memory(step: Step, settings: Settings) -> Memory:
    """Allocated and peak bytes of one (warmed-up) forward; see the module docstring."""
    step()
    device = settings.device
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        served = torch.cuda.memory_stats(device)["allocated_bytes.all.allocated"]
        step()
        synchronize(device)
        served = torch.cuda.memory_stats(device)["allocated_bytes.all.allocated"] - served
        return Memory(served, torch.cuda.max_memory_allocated(device) - before)
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as profile:
        step()
    assert profile.profiler is not None
    events = sorted(
        (
            n
            for n in _tree(profile.profiler.kineto_results.experimental_event_tree())
            if n.tag == _EventType.Allocation
        ),
        key=lambda node: node.start_time_ns,
    )
    if not events:
        return Memory(0, 0)
    first = events[0].extra_fields
    before = first.total_allocated - first.alloc_size
    allocated = sum(max(e.extra_fields.alloc_size, 0) for e in events)
    peak = max(e.extra_fields.total_allocated for e in events) - before
    return Memory(allocated, peak)


# --------------------------------------------------------------------------- one model


class References:
    """torchvision's ResNet-50 in every form, built once for the whole run."""

    def __init__(
        self, settings: Settings, images: torch.Tensor, train_images: torch.Tensor
    ) -> None:
        self.settings = settings
        torch.manual_seed(0)
        self.forms = inference_forms(torchvision.models.resnet50(weights=None), settings, fx_fuse)
        self.inference = {
            f"tv {name}": inference_step(f, images, settings) for name, f in self.forms.items()
        }
        self.training = training_step(
            torchvision.models.resnet50(weights=None), train_images, settings
        )

    def recompile(self, images: torch.Tensor) -> None:
        """After ``torch.compiler.reset()``: a fresh compiled form (compiled again at warm-up)."""
        if self.settings.compile:
            self.forms["compiled"] = torch.compile(self.forms["fused"])
            self.inference["tv compiled"] = inference_step(
                self.forms["compiled"], images, self.settings
            )


def benchmark(
    name: str,
    references: References,
    images: torch.Tensor,
    train_images: torch.Tensor,
    settings: Settings,
) -> Result:
    entry = get_model_entry(name)
    torch.manual_seed(0)
    model = create_model(name, num_classes=1000)
    result = Result(
        name,
        entry.description,
        trainable_params(model) / 1e6,
        gmacs(model, entry.input_size),
        entry.input_size,
    )
    if settings.compile:
        torch.compiler.reset()  # fresh caches for each model (dynamo's per-code cache is small)
        references.recompile(images)
    forms = inference_forms(model, settings, fuse_for_inference)
    ours = {name: inference_step(forward, images, settings) for name, forward in forms.items()}
    result.inference = interleaved({**references.inference, **ours}, images.shape[0], settings)
    for label, step in (
        ("eager", ours["eager"]),
        ("fused", ours["fused"]),
        ("tv eager", references.inference["tv eager"]),
        ("tv fused", references.inference["tv fused"]),
    ):
        result.memory[label] = forward_memory(step, settings)
    del forms, ours

    torch.manual_seed(0)
    trainee = create_model(name, num_classes=1000)
    assert isinstance(trainee, Backbone)
    trainee.set_dropblock_keep_prob(DROPBLOCK_KEEP_PROB)
    steps = {"tv": references.training, "ours": training_step(trainee, train_images, settings)}
    result.training = interleaved(steps, train_images.shape[0], settings)
    return result


def selected_models(patterns: list[str]) -> Iterator[str]:
    for name in list_models():
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            yield name


# --------------------------------------------------------------------------- report


def cpuinfo_field(name: str) -> str | None:
    """The first CPU's ``name`` line of /proc/cpuinfo (Linux), or None where there is none."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    return None


def cpu_model() -> str:
    return cpuinfo_field("model name") or platform.processor() or "unknown"


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
        f"inference batch {settings.batch_size}, training batch {settings.train_batch_size}, "
        f"{settings.image_size} px, channels_last, amp={settings.amp}, "
        f"compile={settings.compile}; {settings.warmup} warm-up passes, then {settings.rounds} "
        f"interleaved rounds of >= {settings.iters} passes and >= {settings.min_seconds} s; "
        f"medians. Reference: {REFERENCE}, plain, BN-folded by torch.fx and compiled-folded."
    )


def megabytes(value: float) -> str:
    return f"{value / 1e6:.0f}"


def figure(value: float, digits: int) -> str:
    """A table cell; '–' for what was not measured (the compiled forms with --no-compile)."""
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def markdown(results: list[Result], settings: Settings, info: dict[str, str]) -> str:
    lines = [f"- {key}: {value}" for key, value in info.items()]
    lines += [
        f"- settings: {settings_line(settings)}",
        "- GMACs = multiply-accumulates (FLOPs / 2) at the model's eval size, batch 1",
        "- fused = `fuse_for_inference` (every BN folded into its conv); compiled = "
        "`torch.compile` of the fused model; tv = torchvision's ResNet-50 in the same form",
        "",
        "### Inference img/s",
        "",
        "| model | params (M) | GMACs @ eval px | eager | fused | compiled | tv eager | tv fused "
        "| tv compiled | eager / tv | fused / tv | fused / tv fused | compiled / tv compiled |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        speeds = [r.median("inference", n) for n in INFERENCE_FORMS]
        speeds += [r.median("inference", f"tv {n}") for n in INFERENCE_FORMS]
        ratios = [
            r.ratio("inference", "eager", "tv eager"),
            r.ratio("inference", "fused", "tv eager"),
            r.ratio("inference", "fused", "tv fused"),
            r.ratio("inference", "compiled", "tv compiled"),
        ]
        lines.append(
            f"| `{r.model}` | {r.params_m:.2f} | {r.gmacs:.2f} @ {r.eval_size} | "
            + " | ".join(figure(s, 1) for s in speeds)
            + " | "
            + " | ".join(figure(q, 2) for q in ratios)
            + " |"
        )
    lines += [
        "",
        f"### Memory of one forward (batch {settings.batch_size}, MB) and training img/s "
        f"(batch {settings.train_batch_size})",
        "",
        "| model | allocated eager | allocated fused | peak eager | peak fused | tv allocated "
        "eager / fused | train img/s | tv train img/s | train / tv |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        memory, tv_eager, tv_fused = r.memory, r.memory["tv eager"], r.memory["tv fused"]
        lines.append(
            f"| `{r.model}` | {megabytes(memory['eager'].allocated)} | "
            f"{megabytes(memory['fused'].allocated)} | {megabytes(memory['eager'].peak)} | "
            f"{megabytes(memory['fused'].peak)} | {megabytes(tv_eager.allocated)} / "
            f"{megabytes(tv_fused.allocated)} | {r.median('training', 'ours'):.1f} | "
            f"{r.median('training', 'tv'):.1f} | {r.ratio('training', 'ours', 'tv'):.2f} |"
        )
    return "\n".join(lines) + "\n"


def as_json(results: list[Result], settings: Settings, info: dict[str, str]) -> str:
    return json.dumps(
        {
            "machine": info,
            "settings": {**asdict(settings), "device": str(settings.device)},
            "reference": REFERENCE,
            "gmacs_convention": "multiply-accumulates = FLOPs / 2, batch 1, eval size",
            "memory_convention": "bytes of one forward: allocated = sum of all allocations, "
            "peak = most bytes alive at once above the level before the forward",
            "results": [asdict(r) for r in results],
        },
        indent=2,
    )


# --------------------------------------------------------------------------- command line


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--models", nargs="+", help="shell-style name patterns (default: all; --quick: one)")
    add("--device", default="cpu", help="cpu (default) or cuda")
    add("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    add("--batch-size", type=int, default=16, help="inference batch")
    add("--train-batch-size", type=int, default=8)
    add("--image-size", type=int, default=224, help="input side (a multiple of 32)")
    add("--warmup", type=int, default=1, help="untimed passes per contestant before the rounds")
    add("--iters", type=int, default=1, help="minimum timed passes per round")
    add("--min-seconds", type=float, help="minimum seconds per round (1.5; --quick: 0)")
    add("--rounds", type=int, help="interleaved rounds per model (3; --quick: 1)")
    add("--amp", action="store_true", help="bf16 autocast on CPU, fp16 on CUDA")
    add("--no-compile", action="store_true", help="skip the torch.compile contestants")
    add("--quick", action="store_true", help="smoke run: 1 round of 1 pass, assemble_resnet50")
    add("--output", type=Path, help="also write the Markdown report here")
    add("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    quick = {"rounds": 1, "min_seconds": 0.0, "models": ["assemble_resnet50"]}
    full = {"rounds": 3, "min_seconds": 1.5, "models": ["*"]}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:  # an option given on the command line wins
            setattr(args, key, value)
    return args


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
        train_batch_size=args.train_batch_size,
        image_size=args.image_size,
        warmup=args.warmup,
        iters=max(args.iters, 1),
        min_seconds=args.min_seconds,
        rounds=args.rounds,
        amp=args.amp,
        compile=not args.no_compile,
    )
    names = list(selected_models(args.models))
    if not names:
        raise SystemExit(f"no registered model matches {args.models}")
    info = machine(settings.device)
    print("\n".join(f"{key}: {value}" for key, value in info.items()), flush=True)

    torch.manual_seed(0)

    def batch(size: int) -> torch.Tensor:
        shape = (size, 3, settings.image_size, settings.image_size)
        images = torch.randn(shape, device=settings.device)
        return images.contiguous(memory_format=torch.channels_last)

    images, train_images = batch(settings.batch_size), batch(settings.train_batch_size)
    references = References(settings, images, train_images)
    start = time.perf_counter()
    results = []
    for name in names:
        result = benchmark(name, references, images, train_images, settings)
        results.append(result)
        print(
            f"{name}: fused {result.ratio('inference', 'fused', 'tv eager'):.2f}× tv, "
            f"{megabytes(result.memory['eager'].allocated)} MB allocated per forward "
            f"({megabytes(result.memory['fused'].allocated)} fused), training "
            f"{result.ratio('training', 'ours', 'tv'):.2f}× tv "
            f"({time.perf_counter() - start:.0f} s elapsed)",
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
