"""Printing reports: one markdown table of one or more JSON reports, and a summary line per report.

The comparison with the reference is measured, not quoted: when the reports of a table include a
run of the reference's code (`--reference-checkout`), every other row with the same preset, mode,
device, dtype, batch, threads and clip length shows that run's s/clip and the ratio of the two.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

TABLE_HEADER = ("| run | preset | mode | device | dtype | batch | threads | fused attn | clips/s | s/clip "
                "| peak MB | GFLOP/step | TFLOP/s | % GPU bf16 peak | reference s/clip | speed-up vs reference |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
SAME_CONDITIONS = ("preset", "device", "dtype", "batch_size", "audio_seconds")  # and the mode and threads


def is_reference_run(report: dict[str, Any]) -> bool:
    return bool(report["settings"].get("reference_checkout"))


def conditions(report: dict[str, Any], mode: str) -> tuple[Any, ...]:
    """What must match for two runs to be compared: the mode, the threads and SAME_CONDITIONS."""
    settings = report["settings"]
    threads = settings["threads"] or report["machine"]["torch_threads"]
    return (mode, threads, *(settings.get(name) for name in SAME_CONDITIONS))


def reference_s_per_clip(reports: list[dict[str, Any]]) -> dict[tuple[Any, ...], float]:
    """s/clip of the reference's runs among `reports`, by `conditions` (the first run of each wins)."""
    measured: dict[tuple[Any, ...], float] = {}
    for report in reports:
        if is_reference_run(report):
            for mode, figures in report["results"].items():
                measured.setdefault(conditions(report, mode), figures["s_per_clip"])
    return measured


def markdown_rows(report: dict[str, Any], reference: dict[tuple[Any, ...], float] | None = None) -> list[str]:
    """One markdown table row per mode of a report; `reference` from `reference_s_per_clip`."""
    settings = report["settings"]
    threads = settings["threads"] or report["machine"]["torch_threads"]
    fused = "on" if settings["effective_fused_attention"] else "off"
    rows = []
    for mode, figures in report["results"].items():
        flops = figures.get("flops_per_step")
        achieved, share = figures.get("achieved_tflops"), figures.get("share_of_bf16_peak")
        reference_s = None if is_reference_run(report) else (reference or {}).get(conditions(report, mode))
        cells = [settings["label"], settings["preset"], mode, settings["device"], settings["dtype"],
                 settings["batch_size"], threads, fused, f"{figures['clips_per_s']:.3f}",
                 f"{figures['s_per_clip']:.4f}", f"{figures['peak_memory_mb']:.0f}",
                 f"{flops / 1e9:.1f}" if flops else "-", f"{achieved:.3g}" if achieved else "-",
                 f"{100 * share:.1f}" if share else "-", f"{reference_s:.4f}" if reference_s else "-",
                 f"{reference_s / figures['s_per_clip']:.2f}x" if reference_s else "-"]
        rows.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return rows


def markdown_table(reports: list[dict[str, Any]]) -> str:
    """Markdown table of one or more reports (a row per report and mode), compared with the reference's runs."""
    reference = reference_s_per_clip(reports)
    rows = [row for report in reports for row in markdown_rows(report, reference)]
    return "\n".join([TABLE_HEADER, *rows])


def summary_lines(report: dict[str, Any]) -> Iterator[str]:
    """Machine line, which code was measured and, on CUDA, the share of the GPU's bf16 peak."""
    machine = report["machine"]
    yield (f"machine: {machine['cpu_model']}, {machine['usable_cpus']} usable CPUs, torch {machine['torch']}"
           + (f", GPU {machine['gpu']}" if machine["gpu"] else ""))
    code = report.get("code", {})
    if code.get("measured") == "reference":
        yield f"code: the reference's, from {code['checkout']} (files sha256 {code['files_sha256']})"
    for mode, figures in report["results"].items():
        if figures.get("share_of_bf16_peak") is not None:
            yield f"{mode}: {100 * figures['share_of_bf16_peak']:.1f}% of the GPU's dense bf16 peak"
