"""Writing a robustness evaluation: the printed table, ``robustness.csv``, ``robustness.json``
and ``robustness.png`` (a bar chart of CE per corruption against the AlexNet = 100 line).

The numbers come from :mod:`.metrics`; this module only lays them out. Errors and CEs are shown
in percent, as the paper and the ImageNet-C leaderboard print them.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..data.samples import naming_os_errors


@dataclass(frozen=True)
class CorruptionRow:
    """One corruption's line of the report (fractions; ``ce`` relative to AlexNet, 1 = equal)."""

    corruption: str
    errors: Mapping[int, float]
    mean_error: float
    ce: float | None = None
    relative_ce: float | None = None


@dataclass(frozen=True)
class RobustnessReport:
    """What a run measured: one row per corruption and the summary numbers (fractions)."""

    rows: Sequence[CorruptionRow]
    summary: Mapping[str, float | None]
    """e.g. ``clean_error``, ``mce_15``, ``mce_19``, ``relative_mce_15``, ``unnormalized_mce``,
    ``ece_clean``; None where it cannot be computed (say, no clean images for relative mCE)."""
    notes: Sequence[str] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, object]:
        return {
            "summary": dict(self.summary),
            "corruptions": {
                row.corruption: {
                    "errors": {str(s): e for s, e in sorted(row.errors.items())},
                    "mean_error": row.mean_error,
                    "ce": row.ce,
                    "relative_ce": row.relative_ce,
                }
                for row in self.rows
            },
            "notes": list(self.notes),
        }


def _percent(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def format_table(report: RobustnessReport) -> str:
    """A Markdown table (readable in a terminal too): per corruption the error per severity,
    the mean error, CE and relative CE in percent; then the summary."""
    severities = sorted({s for row in report.rows for s in row.errors})
    header = ["corruption", *(f"s{s}" for s in severities), "mean err", "CE", "rel. CE"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report.rows:
        cells = [
            row.corruption,
            *(_percent(row.errors.get(s)) for s in severities),
            _percent(row.mean_error),
            _percent(row.ce),
            _percent(row.relative_ce),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"{name}: {_percent(value)}" for name, value in report.summary.items()]
    lines += list(report.notes)
    return "\n".join(lines)


def write_csv(report: RobustnessReport, path: Path) -> None:
    """One line per corruption × severity (fractions), for spreadsheets."""
    with naming_os_errors(path), path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["corruption", "severity", "error", "corruption_mean_error", "ce"])
        for row in report.rows:
            for severity, error in sorted(row.errors.items()):
                writer.writerow([row.corruption, severity, error, row.mean_error, row.ce])


def write_json(report: RobustnessReport, path: Path) -> None:
    with naming_os_errors(path):
        path.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=True) + "\n")


def draw_bar_chart(report: RobustnessReport, path: Path, title: str = "") -> None:
    """Bars of CE (%) per corruption with the AlexNet = 100 line; mean error (%) per corruption
    when there is no AlexNet baseline (a data set other than ImageNet)."""
    normalized = all(row.ce is not None for row in report.rows)
    values = [100 * (row.ce if normalized else row.mean_error) for row in report.rows]  # type: ignore[operator]
    width, height, left, bottom, top = 80 + 42 * len(values), 420, 60, 120, 40
    top_value = max([*values, 100.0 if normalized else 0.0]) * 1.1 or 1.0
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    plot_height = height - bottom - top

    def y_of(value: float) -> float:
        return height - bottom - plot_height * value / top_value

    draw.line([(left, top), (left, height - bottom), (width - 10, height - bottom)], "black")
    for tick in range(0, int(top_value) + 1, 20 if top_value > 60 else 10):
        draw.text((8, y_of(tick) - 6), f"{tick:>4}", "black", font)
        draw.line([(left - 4, y_of(tick)), (left, y_of(tick))], "black")
    for i, (row, value) in enumerate(zip(report.rows, values, strict=True)):
        x = left + 12 + 42 * i
        draw.rectangle([(x, y_of(value)), (x + 28, height - bottom)], fill=(70, 110, 180))
        label = Image.new("RGB", (bottom - 8, 14), "white")
        ImageDraw.Draw(label).text((0, 0), row.corruption, "black", font)
        image.paste(label.rotate(90, expand=True), (x + 8, height - bottom + 6))
    if normalized:
        draw.line([(left, y_of(100)), (width - 10, y_of(100))], (200, 40, 40), 2)
        draw.text((width - 120, y_of(100) - 16), "AlexNet = 100", (200, 40, 40), font)
    draw.text(
        (left, 10), title or ("CE (%) per corruption" if normalized else "error (%)"), "black", font
    )
    with naming_os_errors(path):
        image.save(path)


def write_report(report: RobustnessReport, folder: Path, title: str = "") -> list[Path]:
    """The CSV, JSON and PNG in ``folder`` (made if missing); returns their paths."""
    with naming_os_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "robustness.csv", folder / "robustness.json", folder / "robustness.png"]
    write_csv(report, paths[0])
    write_json(report, paths[1])
    draw_bar_chart(report, paths[2], title)
    return paths
