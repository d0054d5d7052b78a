"""Batch-1, single-thread latency of FP32 against int8 for the mobile and ResNet-50 models
(issue #13), on each CPU backend, all timed interleaved in one process.

Reproduce the table in ``benchmarks/RESULTS.md`` (from the repository root):

    python benchmarks/latency.py --output latency.md

A quick check that the script runs (one model, two short rounds):

    python benchmarks/latency.py --models mobilenet_v1 --rounds 2 --seconds 0.5

For each model (``--models``; random weights from ``create_model(name, num_classes=1000)``, eval
mode: latency does not depend on the weights' values) the input is one normalised image of random
pixels at the model's paper eval crop (``entry.input_size``: 256 px for
``assemble_resnet50``, else 224), and five variants are built (``--backends`` picks the pairs):

* ``eager``: FP32 eager PyTorch under ``torch.no_grad``, the reference column (no ratio target);
* ``onnxruntime``: the FP32 ONNX file (``save_onnx`` of ``export_program``) against its int8
  QDQ file (``quantize_onnx``, calibrated on ``--calibration-batches`` batches of 2 random
  images), each in an ONNX Runtime CPU session with one intra-op and one inter-op thread, fed a
  ready numpy array;
* ``inductor``: ``torch.compile`` of the FP32 eval model against ``torch.compile`` of the pt2e
  int8 model (``quantize_pt2e`` of ``export_program``, ``X86InductorQuantizer``, same
  calibration), both with
  ``torch._inductor.config.freezing = True`` (what fuses the quantize / dequantize pairs into
  int8 kernels), under ``torch.no_grad``.

``torch.set_num_threads(1)`` holds for the whole run. Every variant is called once (the compile:
its seconds are reported, not timed as latency), then ``--warmup`` more times. Then
``--rounds`` rounds each time every variant in turn (the order reversed every other round, so
that within each pair FP32 and int8 alternate who goes first) for ``--seconds`` seconds and at
least ``--min-calls`` calls; each call is timed on its own. The table gives the median of every
variant's per-call latencies and the int8 speed-up = FP32 median / int8 median (in brackets the
range of that ratio over the rounds' own medians), with the targets of issue #13: ≥ 1.7× for
``mobilenet_v1``, ≥ 2× for ``assemble_resnet50``. As a sanity check, each int8 variant's top-1
agreement and mean output cosine with FP32 eager on ``--agreement-images`` random images. With
random weights the logits hardly depend on the image (two images' FP32 outputs have a cosine of
~0.998), so the plain cosine is ~1 whatever int8 does and top-1 picks among near-ties: the
*centred* cosine, of the outputs less the FP32 outputs' mean over the images, says how much of
the image-dependent part int8 keeps.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch._inductor.config as inductor_config
import torch.nn.functional as F
import torchao
from throughput import cpu_model, cpuinfo_field  # benchmarks/ is the script's folder: one owner
from torch import nn

from assembled_lightning.export.parity import Agreement, Runner, measure_agreement
from assembled_lightning.export.pipeline import random_inputs
from assembled_lightning.export.preprocessing import Preprocessing
from assembled_lightning.export.programs import export_program, save_onnx
from assembled_lightning.export.quantize import quantize_onnx, quantize_pt2e
from assembled_lightning.models import create_model, get_model_entry

MODELS = ("mobilenet_v1", "se_mobilenet_v1", "resnet50", "assemble_resnet50")
BACKENDS = ("eager", "onnxruntime", "inductor")
PAIRED = ("onnxruntime", "inductor")
TARGETS = {"mobilenet_v1": 1.7, "assemble_resnet50": 2.0}
"""Issue #13's int8 speed-up targets at batch 1 on one thread (paper: 1.73× for MobileNet-V1 on
a Pixel-3 core)."""
AGREEMENT_SEED = 1000
"""Seeds of the agreement images start here (the timed image's is the one before), away from
the calibration seeds 0, 1, ..."""

Call = Callable[[], object]


@dataclass
class Variant:
    """One way of running the model: a call on the fixed input and its timed latencies."""

    name: str
    call: Call
    first_call_s: float = 0.0
    rounds: list[list[float]] = field(default_factory=list)
    """Per round, the latency of every call in ms."""

    def median(self) -> float:
        return statistics.median(ms for round_ in self.rounds for ms in round_)

    def round_medians(self) -> list[float]:
        return [statistics.median(round_) for round_ in self.rounds]


@dataclass
class Result:
    """One model: its variants' latencies and the int8 variants' closeness to FP32."""

    model: str
    size: int
    variants: dict[str, Variant]
    agreement: dict[str, Agreement]
    """int8 variant name → agreement with FP32 eager."""
    centred_cosine: dict[str, float]
    """int8 variant name → mean cosine with FP32 eager of the outputs less their FP32 mean."""

    def speedup(self, backend: str) -> tuple[float, float, float] | None:
        """FP32 / int8 median latency of a backend, and its min and max over the rounds."""
        fp32, int8 = self.variants.get(f"{backend} fp32"), self.variants.get(f"{backend} int8")
        if fp32 is None or int8 is None:
            return None
        per_round = [a / b for a, b in zip(fp32.round_medians(), int8.round_medians(), strict=True)]
        return fp32.median() / int8.median(), min(per_round), max(per_round)


@dataclass(frozen=True)
class Settings:
    backends: tuple[str, ...]
    rounds: int
    seconds: float
    min_calls: int
    warmup: int
    calibration_batches: int
    agreement_images: int


# --------------------------------------------------------------------------- the variants


def ort_session(path: Path) -> ort.InferenceSession:
    """A CPU session on one thread: one intra-op thread, and one inter-op (sequential)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(
        os.fspath(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def ort_runner(session: ort.InferenceSession) -> Runner:
    name = session.get_inputs()[0].name
    return lambda batch: torch.from_numpy(session.run(None, {name: batch.numpy()})[0])


def ort_call(session: ort.InferenceSession, image: torch.Tensor) -> Call:
    """The session on a ready numpy array: no tensor conversion inside the timed call."""
    feeds = {session.get_inputs()[0].name: np.ascontiguousarray(image.numpy())}
    return lambda: session.run(None, feeds)


def onnxruntime_pair(
    model: nn.Module, image: torch.Tensor, calibration: list[torch.Tensor], folder: Path
) -> tuple[dict[str, Variant], Runner]:
    fp32_path, int8_path = folder / "fp32.onnx", folder / "int8.onnx"
    save_onnx(export_program(model, calibration[0]), fp32_path)
    quantize_onnx(fp32_path, int8_path, calibration)
    fp32, int8 = ort_session(fp32_path), ort_session(int8_path)
    variants = {
        "onnxruntime fp32": Variant("onnxruntime fp32", ort_call(fp32, image)),
        "onnxruntime int8": Variant("onnxruntime int8", ort_call(int8, image)),
    }
    return variants, ort_runner(int8)


def inductor_pair(
    model: nn.Module, image: torch.Tensor, calibration: list[torch.Tensor]
) -> tuple[dict[str, Variant], Runner]:
    """Both compiled lazily: the first call (the warm-up's) compiles, at batch 1."""
    fp32 = torch.compile(model)
    int8 = torch.compile(quantize_pt2e(export_program(model, calibration[0]), calibration))
    variants = {
        "inductor fp32": Variant("inductor fp32", lambda: fp32(image)),
        "inductor int8": Variant("inductor int8", lambda: int8(image)),
    }
    return variants, int8


# --------------------------------------------------------------------------- measuring


@torch.no_grad()
def centred_cosine(reference: Runner, quantized: Runner, images: list[torch.Tensor]) -> float:
    """Mean cosine of int8 and FP32 outputs after taking the FP32 outputs' mean over the images
    from both: the image-dependent part only (see the module docstring)."""
    expected = torch.cat([reference(image) for image in images]).float()
    actual = torch.cat([quantized(image) for image in images]).float()
    mean = expected.mean(0, keepdim=True)
    return F.cosine_similarity(expected - mean, actual - mean, dim=1).mean().item()


def timed_round(call: Call, seconds: float, min_calls: int) -> list[float]:
    """Per-call latencies (ms) for at least ``seconds`` and ``min_calls`` calls."""
    latencies: list[float] = []
    start = time.perf_counter()
    while len(latencies) < min_calls or time.perf_counter() - start < seconds:
        begin = time.perf_counter_ns()
        call()
        latencies.append((time.perf_counter_ns() - begin) / 1e6)
    return latencies


@torch.no_grad()
def measure(variants: list[Variant], settings: Settings) -> None:
    for variant in variants:
        start = time.perf_counter()
        variant.call()
        variant.first_call_s = time.perf_counter() - start
        for _ in range(settings.warmup):
            variant.call()
    for index in range(settings.rounds):
        order = variants if index % 2 == 0 else variants[::-1]
        for variant in order:
            variant.rounds.append(timed_round(variant.call, settings.seconds, settings.min_calls))
        print(
            f"  round {index + 1}: "
            + ", ".join(f"{v.name} {statistics.median(v.rounds[-1]):.2f} ms" for v in variants),
            flush=True,
        )


def benchmark(name: str, settings: Settings) -> Result:
    size = get_model_entry(name).input_size
    prep = Preprocessing(size, size)
    torch.manual_seed(0)
    model = create_model(name, num_classes=1000).eval()
    image = random_inputs(prep, count=1, seed=AGREEMENT_SEED - 1)
    calibration = [random_inputs(prep, 2, seed) for seed in range(settings.calibration_batches)]
    held_out = [
        random_inputs(prep, count=1, seed=AGREEMENT_SEED + k)
        for k in range(settings.agreement_images)
    ]
    variants: dict[str, Variant] = {}
    int8_runners: dict[str, Runner] = {}
    with tempfile.TemporaryDirectory() as scratch:
        if "eager" in settings.backends:
            variants["eager fp32"] = Variant("eager fp32", lambda: model(image))
        if "onnxruntime" in settings.backends:
            pair, int8_runners["onnxruntime int8"] = onnxruntime_pair(
                model, image, calibration, Path(scratch)
            )
            variants.update(pair)
        if "inductor" in settings.backends:
            pair, int8_runners["inductor int8"] = inductor_pair(model, image, calibration)
            variants.update(pair)
        print(f"{name} ({size} px): built {', '.join(variants)}", flush=True)
        measure(list(variants.values()), settings)
        agreement = {
            variant: measure_agreement(model, runner, held_out)
            for variant, runner in int8_runners.items()
        }
        centred = {
            variant: centred_cosine(model, runner, held_out)
            for variant, runner in int8_runners.items()
        }
    torch.compiler.reset()  # the next model compiles afresh (dynamo's per-code cache is small)
    return Result(name, size, variants, agreement, centred)


# --------------------------------------------------------------------------- report


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


INT8_INSTRUCTION_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
"""The /proc/cpuinfo flags that decide how fast x86 int8 kernels can be: the ratios of a CPU
without VNNI / AMX (AVX2's pairwise ``vpmaddubsw``) are not comparable with one that has them."""


def int8_instructions() -> str:
    flags = set((cpuinfo_field("flags") or "").split())
    present = [flag for flag in INT8_INSTRUCTION_FLAGS if flag in flags]
    return ", ".join(present) if present else "none of " + ", ".join(INT8_INSTRUCTION_FLAGS)


def machine() -> dict[str, str]:
    return {
        "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "cpu": f"{cpu_model()}, {os.cpu_count()} logical cores",
        "int8 instructions": int8_instructions(),
        "threads": f"torch {torch.get_num_threads()}, onnxruntime 1 intra-op + 1 inter-op",
        "versions": f"torch {torch.__version__}, onnxruntime {ort.__version__}, "
        f"torchao {torchao.__version__}",
        "platform": platform.platform(),
        "load average at start": load(),
    }


def cell(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def median_of(result: Result, variant: str) -> float | None:
    found = result.variants.get(variant)
    return found.median() if found else None


def speedup_cell(result: Result, backend: str) -> str:
    speedup = result.speedup(backend)
    if speedup is None:
        return "–"
    ratio, low, high = speedup
    return f"**{ratio:.2f}×** ({low:.2f}–{high:.2f})"


def compile_cell(result: Result) -> str:
    fp32, int8 = result.variants.get("inductor fp32"), result.variants.get("inductor int8")
    if fp32 is None or int8 is None:
        return "–"
    return f"{fp32.first_call_s:.0f} / {int8.first_call_s:.0f}"


def agreement_cell(result: Result, variant: str) -> str:
    found = result.agreement.get(variant)
    if found is None:
        return "–"
    centred = result.centred_cosine[variant]
    return f"{100 * found.top1_agreement:.0f} % / {found.mean_cosine:.4f} / {centred:.3f}"


def target_lines(results: list[Result]) -> Iterator[str]:
    for result in results:
        target = TARGETS.get(result.model)
        if target is None:
            continue
        for backend in PAIRED:
            speedup = result.speedup(backend)
            if speedup is not None:
                verdict = "met" if speedup[0] >= target else "NOT met"
                yield (
                    f"- `{result.model}` {backend}: int8 speed-up {speedup[0]:.2f}× "
                    f"(target ≥ {target}×): {verdict}"
                )


def markdown(results: list[Result], settings: Settings, info: dict[str, str]) -> str:
    lines = [f"- {key}: {value}" for key, value in info.items()]
    lines += [
        f"- settings: batch 1, random weights, {settings.rounds} interleaved rounds of "
        f">= {settings.seconds} s and >= {settings.min_calls} calls per variant, "
        f"{settings.warmup} warm-up calls after the first; median of per-call latencies; int8 "
        f"calibrated on {settings.calibration_batches} batches of 2 random images; agreement "
        f"on {settings.agreement_images} random images",
        "",
        "| model | px | eager FP32 ms | ORT FP32 ms | ORT int8 ms | ORT int8 speed-up "
        "| inductor FP32 ms | inductor int8 ms | inductor int8 speed-up "
        "| inductor compile s (FP32 / int8) | ORT int8 vs eager: top-1 / cos / centred cos "
        "| inductor int8 vs eager: top-1 / cos / centred cos |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        times = [
            cell(median_of(r, v), 2) for v in ("eager fp32", "onnxruntime fp32", "onnxruntime int8")
        ]
        inductor = [cell(median_of(r, v), 2) for v in ("inductor fp32", "inductor int8")]
        lines.append(
            f"| `{r.model}` | {r.size} | {' | '.join(times)} | {speedup_cell(r, 'onnxruntime')} "
            f"| {' | '.join(inductor)} | {speedup_cell(r, 'inductor')} | {compile_cell(r)} "
            f"| {agreement_cell(r, 'onnxruntime int8')} | {agreement_cell(r, 'inductor int8')} |"
        )
    targets = list(target_lines(results))
    if targets:
        lines += ["", "Targets (issue #13):", *targets]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- command line


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--models", nargs="+", default=list(MODELS), help="registered model names")
    add("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    add("--rounds", type=int, default=5, help="interleaved rounds")
    add("--seconds", type=float, default=2.0, help="minimum seconds per round per variant")
    add("--min-calls", type=int, default=5, help="minimum calls per round per variant")
    add("--warmup", type=int, default=3, help="untimed calls after the first (compiling) one")
    add("--calibration-batches", type=int, default=4, help="int8 calibration batches of 2")
    add("--agreement-images", type=int, default=8, help="random images for int8 agreement")
    add("--output", type=Path, help="also write the Markdown report here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    inductor_config.freezing = True  # constant weights: int8 fusion needs them
    settings = Settings(
        backends=tuple(args.backends),
        rounds=args.rounds,
        seconds=args.seconds,
        min_calls=max(args.min_calls, 1),
        warmup=args.warmup,
        calibration_batches=args.calibration_batches,
        agreement_images=args.agreement_images,
    )
    info = machine()
    print("\n".join(f"{key}: {value}" for key, value in info.items()), flush=True)
    start = time.perf_counter()
    results = []
    for name in args.models:
        results.append(benchmark(name, settings))
        print(f"{name} done ({time.perf_counter() - start:.0f} s elapsed)", flush=True)
    info["load average at end"] = load()
    info["wall time"] = f"{time.perf_counter() - start:.0f} s"
    report = markdown(results, settings, info)
    print(f"\n{report}")
    if args.output:
        args.output.write_text(report)


if __name__ == "__main__":
    main()
