"""Printing reports: one markdown table of one or more JSON reports, and a summary against the reference."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

TABLE_HEADER = ("| run | preset | mode | device | dtype | batch | threads | fused attn | clips/s | s/clip "
                "| peak MB | GFLOP/step | TFLOP/s | % GPU bf16 peak | ref s/clip | speed-up vs ref |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def markdown_rows(report: dict[str, Any]) -> list[str]:
    """One markdown table row per mode of a report."""
    settings = report["settings"]
    threads = settings["threads"] or report["machine"]["torch_threads"]
    fused = "on" if settings["effective_fused_attention"] else "off"
    rows = []
    for mode, figures in report["results"].items():
        flops = figures.get("flops_per_step")
        speedup = figures.get("speedup_vs_reference")
        achieved, share = figures.get("achieved_tflops"), figures.get("share_of_bf16_peak")
        reference = report["reference"]["reference_s_per_clip"][mode] if speedup else None
        cells = [settings["label"], settings["preset"], mode, settings["device"], settings["dtype"],
                 settings["batch_size"], threads, fused, f"{figures['clips_per_s']:.3f}",
                 f"{figures['s_per_clip']:.4f}", f"{figures['peak_memory_mb']:.0f}",
                 f"{flops / 1e9:.1f}" if flops else "-", f"{achieved:.3g}" if achieved else "-",
                 f"{100 * share:.1f}" if share else "-", f"{reference:.2f}" if reference else "-",
                 f"{speedup:.2f}x" if speedup else "-"]
        rows.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return rows


def markdown_table(reports: list[dict[str, Any]]) -> str:
    """Markdown table of one or more reports (a row per report and mode)."""
    rows = [row for report in reports for row in markdown_rows(report)]
    return "\n".join([TABLE_HEADER, *rows])


def summary_lines(report: dict[str, Any]) -> Iterator[str]:
    """Machine line and, where the settings match the reference figures, the speed-up against them."""
    machine = report["machine"]
    yield (f"machine: {machine['cpu_model']}, {machine['usable_cpus']} usable CPUs, torch {machine['torch']}"
           + (f", GPU {machine['gpu']}" if machine["gpu"] else ""))
    for mode, figures in report["results"].items():
        reference = report["reference"]["reference_s_per_clip"][mode]
        if figures.get("speedup_vs_reference"):
            yield (f"{mode}: {figures['s_per_clip']:.3f} s/clip vs the reference's {reference} s/clip "
                   f"-> {figures['speedup_vs_reference']:.2f}x faster")
        if figures.get("share_of_bf16_peak") is not None:
            yield f"{mode}: {100 * figures['share_of_bf16_peak']:.1f}% of the GPU's dense bf16 peak"
