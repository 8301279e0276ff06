"""The paper's zero-shot table in one command: every evaluation whose data lies under --data-root, our numbers
beside the paper's.

    python paper_table.py --ckpt pretrained_models/model.pt --data-root data/ --out results
    python paper_table.py                        # quickstart checkpoint on the synthetic corpus (report card rows)

--data-root is the reference's parent folder of every dataset, or the synthetic corpus. Each dataset is looked
for where the zero_shot_*.py scripts find it (docs/datasets.md), relative to the data root:
  ESC-50-master/, UrbanSound8K/, VGGSound/    classification (or the root itself is one of them)
  AudioSet_SL/, DESED/, UrbanSED/             SED (DESED and UrbanSED in the SED folder layout: audio/,
                                              metadata/eval.tsv, metadata/eval_durations.tsv)
  TAG/test/                                   grounding (or the root itself is an AudioGrounding folder)
  AudioCaps/, Clotho/                         retrieval: <name>/json_files/test.json, <name>/test.json,
                                              retrieval/data/<name>/json_files/test.json (WavCaps' tree) or
                                              waveforms/json_files/<name>/test.json
  the synthetic corpus                        the root itself or <root>/synthetic (a DONE file): the report
                                              card's four tasks, as rows of their own without paper numbers
Each evaluation calls the function its zero_shot_*.py script calls, with the YAML's eval keys (the reference's
protocols by default). A dataset not found is listed as absent with the paths looked at, never as a zero; one
that fails is listed with its error and the others still run. Writes OUT.json (the table, every result, the
run) and OUT.md (the table); prints the table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from torch import nn

from data_handling.eval_sets.layouts import EVAL_LAYOUTS, EvalFiles, EvalLayout, find_eval_files
from data_handling.synthetic import corpus_exists
from tools.config import Config
from tools.eval.classification import evaluate_classification_dataset
from tools.eval.cli import (
    add_strict_option,
    exit_script,
    load_script_config,
    load_script_model,
    resolve_path,
    run_script,
    script_parser,
    write_json,
)
from tools.eval.grounding import evaluate_grounding
from tools.eval.report_card import SYNTHETIC_TASKS, evaluate_synthetic_task
from tools.eval.retrieval import evaluate_retrieval
from tools.eval.sed import evaluate_sed

log = logging.getLogger("paper_table")


@dataclass(frozen=True)
class Metric:
    """One number of the table: its label, its key in the evaluation's result, the paper's value."""

    label: str
    key: str
    paper: float | None = None
    digits: int = 1


@dataclass(frozen=True)
class PaperDataset:
    """A dataset of the paper's table: its task (the table's section), the layout key of
    data_handling.eval_sets.layouts.EVAL_LAYOUTS, the folders under the data root where that layout is tried,
    and its metrics."""

    name: str
    task: str
    layout: str
    folders: tuple[str, ...]
    metrics: tuple[Metric, ...]


def retrieval_metrics(paper: dict[str, float] | None = None) -> tuple[Metric, ...]:
    return tuple(Metric(f"{direction.upper()} R@{k} (%)", f"{direction}_R{k}_percent",
                        (paper or {}).get(f"{direction}_R{k}_percent"))
                 for direction in ("t2a", "a2t") for k in (1, 5, 10))


def retrieval_folders(name: str) -> tuple[str, ...]:
    return (f"{name}/json_files", name, f"retrieval/data/{name}/json_files", f"waveforms/json_files/{name}")


GROUNDING_KEY = "psds_0.5"
PAPER_DATASETS = (
    PaperDataset("ESC-50", "classification", "esc50", ("",), (Metric("accuracy (%)", "accuracy_percent", 94.9),)),
    PaperDataset("UrbanSound8K", "classification", "urbansound8k", ("",),
                 (Metric("accuracy (%)", "accuracy_percent", 83.7),)),
    PaperDataset("VGGSound", "classification", "vggsound", ("",), (Metric("accuracy (%)", "accuracy_percent", 31.8),)),
    PaperDataset("AudioSet-strong", "sed", "sed", ("AudioSet_SL",), (Metric("PSDS1", "psds1", 0.354, 3),)),
    PaperDataset("DESED", "sed", "sed", ("DESED",), (Metric("PSDS1", "psds1", 0.264, 3),)),
    PaperDataset("UrbanSED", "sed", "sed", ("UrbanSED", "URBAN-SED"), (Metric("PSDS1", "psds1", 0.087, 3),)),
    PaperDataset("AudioGrounding", "grounding", "grounding", ("",),
                 (Metric("PSDS (dtc = gtc = 0.5)", GROUNDING_KEY, 0.487, 3),)),
    # The paper's retrieval R@k are not filled in here: the paper column stays empty for them.
    PaperDataset("AudioCaps", "retrieval", "retrieval", retrieval_folders("AudioCaps"), retrieval_metrics()),
    PaperDataset("Clotho", "retrieval", "retrieval", retrieval_folders("Clotho"), retrieval_metrics()),
)
"""The rows of the paper's table, in its order, with its numbers."""

SYNTHETIC_FOLDERS = ("", "synthetic")
SYNTHETIC_METRICS = {
    "retrieval": retrieval_metrics(),
    "classification": (Metric("accuracy (%), ESC-50 protocol", "accuracy_percent"),),
    "sed": (Metric("PSDS1", "psds1", digits=3), Metric("PSDS2", "psds2", digits=3)),
    "grounding": (Metric("PSDS (dtc = gtc = 0.5)", GROUNDING_KEY, digits=3),),
}
"""The report card's tasks and numbers (pretrain.print_report's, plus R@5 and R@10)."""

TASK_LABELS = {"classification": "classification", "sed": "SED", "grounding": "grounding", "retrieval": "retrieval"}
NOTES = (
    "Retrieval: the paper's R@k are not filled in; compare with the paper's retrieval table.",
    "Grounding: PSDS at dtc = gtc = 0.5, the report card's headline; psds_0.7 and psds_0.1 are in the JSON.",
    "Units: accuracy and R@k in percent, PSDS as fractions (0..1). Absent: no data found under the data root.",
)


def parse_args(argv: list[str] | None):
    parser = script_parser(__doc__, out_default="results",
                           out_help="write OUT.json and OUT.md (default: %(default)s)")
    add_strict_option(parser)
    return parser.parse_args(argv)


def require_data_root(config: Config) -> Path:
    root = resolve_path(config.eval.data_root_dir)
    if root is None:
        raise ValueError("no dataset folder: set eval.data_root_dir in the YAML or pass --data-root")
    if not root.is_dir():
        raise FileNotFoundError(f"--data-root {root} is not a folder; pass the reference's parent folder of every "
                                f"dataset or the synthetic corpus (docs/datasets.md)")
    return root


def candidates(dataset: PaperDataset, root: Path) -> list[tuple[Path, EvalLayout]]:
    """The (folder, layout) pairs tried, in order: at the root itself every layout of the task; in a dataset's
    sub-folder only the layouts of a dataset's own folder."""
    return [(root / folder, layout) for folder in dataset.folders for layout in EVAL_LAYOUTS[dataset.layout]
            if not folder or not layout.folder]


def locate(dataset: PaperDataset, root: Path) -> EvalFiles | None:
    """The dataset's files under `root` (as its zero_shot_*.py script finds them), or None."""
    for folder, layout in candidates(dataset, root):
        if layout.matches(folder):
            return find_eval_files(folder, dataset.layout)
    return None


def looked_for(dataset: PaperDataset, root: Path) -> list[str]:
    return [layout.listing(folder) for folder, layout in candidates(dataset, root)]


def synthetic_root(root: Path) -> Path | None:
    return next((root / folder for folder in SYNTHETIC_FOLDERS if corpus_exists(root / folder)), None)


def protocol_options(config: Config, task: str) -> dict[str, Any]:
    """The YAML's protocol keys that the task's evaluate function takes (as its zero_shot_*.py script passes)."""
    options: dict[str, Any] = {"long_audio": config.eval.long_audio, "strict": config.eval.strict}
    if task in ("retrieval", "classification"):
        options["crop_seed"] = config.eval.crop_seed
    if task == "retrieval":
        options["padding"] = config.eval.retrieval_padding
    if task in ("sed", "grounding"):
        options["score_tiled_tail"] = config.eval.score_tiled_tail
    return options


def evaluate_dataset(model: nn.Module, dataset: PaperDataset, files: EvalFiles, root: Path, config: Config,
                     device) -> dict[str, Any]:
    """The dataset's evaluation, by the function its zero_shot_*.py script calls."""
    options = {"device": device, "batch_size": config.eval.batch_size, "num_workers": config.eval.num_workers,
               "precision": config.eval.precision, **protocol_options(config, dataset.task)}
    paths = files.paths
    if dataset.task == "classification":
        return evaluate_classification_dataset(model, dataset.layout, files.folder, **options)
    if dataset.task == "sed":
        return evaluate_sed(model, paths["audio"], paths["events"], paths["durations"], **options)
    if dataset.task == "grounding":
        return evaluate_grounding(model, paths["json"], paths["audio"], durations_file=paths.get("durations"),
                                  **options)
    return evaluate_retrieval(model, paths["json"], search_roots=[root], **options)


def run_guarded(name: str, evaluate: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """{"status": "ok", "result": ...}, or {"status": "error", "error": ...} when the evaluation fails."""
    log.info("evaluating %s", name)
    try:
        return {"status": "ok", "result": evaluate()}
    except Exception as error:  # noqa: BLE001 - one failing dataset must not stop the others
        log.exception("%s failed; the other datasets still run", name)
        return {"status": "error", "error": f"{type(error).__name__}: {error}"}


def table_rows(dataset: str, task: str, metrics: tuple[Metric, ...], outcome: dict[str, Any],
               synthetic: bool = False) -> list[dict[str, Any]]:
    result = outcome.get("result", {})
    return [{"task": task, "dataset": dataset, "metric": metric.label, "key": metric.key, "paper": metric.paper,
             "ours": result.get(metric.key), "digits": metric.digits, "status": outcome["status"],
             "synthetic": synthetic} for metric in metrics]


def build_table(model: nn.Module, root: Path, found: dict[str, EvalFiles], synthetic: Path | None, config: Config,
                device) -> dict[str, Any]:
    """Evaluate what was found; every paper dataset gets its rows (absent ones too), the synthetic corpus its own."""
    rows: list[dict[str, Any]] = []
    datasets: dict[str, dict[str, Any]] = {}
    for dataset in PAPER_DATASETS:
        if dataset.name in found:
            files = found[dataset.name]
            outcome = run_guarded(dataset.name, partial(evaluate_dataset, model, dataset, files, root, config, device))
            outcome["files"] = {role: str(path) for role, path in files.paths.items()}
        else:
            outcome = {"status": "absent", "looked_for": looked_for(dataset, root)}
        datasets[dataset.name] = outcome
        rows += table_rows(dataset.name, dataset.task, dataset.metrics, outcome)
    if synthetic is None:
        datasets["synthetic corpus"] = {"status": "absent", "looked_for": [
            f"synthetic corpus: {root / folder / 'DONE'}" for folder in SYNTHETIC_FOLDERS]}
    for task in SYNTHETIC_TASKS if synthetic is not None else ():
        name = f"synthetic corpus: {task}"
        datasets[name] = run_guarded(name, partial(
            evaluate_synthetic_task, model, synthetic, task, device, config.eval.batch_size,
            config.eval.num_workers, config.eval.precision, protocol_options(config, task)))
        rows += table_rows("synthetic corpus", task, SYNTHETIC_METRICS[task], datasets[name], synthetic=True)
    return {"rows": rows, "datasets": datasets, "notes": list(NOTES)}


def format_value(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def markdown(table: dict[str, Any]) -> str:
    """The table (paper beside ours), then the absent datasets with where they were looked for, the errors and
    the notes."""
    run = table["run"]
    lines = ["# Zero-shot results beside the paper's", "",
             f"checkpoint `{run['checkpoint']}`, data root `{run['data_root']}`, device {run['device']}", "",
             "| task | dataset | metric | paper | ours |", "|---|---|---|---|---|"]
    for row in table["rows"]:
        ours = format_value(row["ours"], row["digits"]) if row["status"] == "ok" else row["status"]
        paper = "–" if row["synthetic"] else format_value(row["paper"], row["digits"])
        lines.append(f"| {TASK_LABELS[row['task']]} | {row['dataset']} | {row['metric']} | {paper} | {ours} |")
    absent = {name: entry for name, entry in table["datasets"].items() if entry["status"] == "absent"}
    errors = {name: entry for name, entry in table["datasets"].items() if entry["status"] == "error"}
    if absent:
        lines += ["", "## Absent (not found under the data root)", ""]
        lines += [f"- {name}: looked for " + "; ".join(entry["looked_for"]) for name, entry in absent.items()]
    if errors:
        lines += ["", "## Errors", ""] + [f"- {name}: {entry['error']}" for name, entry in errors.items()]
    lines += ["", "## Notes", ""] + [f"- {note}" for note in table["notes"]]
    return "\n".join(lines) + "\n"


def output_paths(out: str) -> tuple[Path, Path]:
    """OUT.json and OUT.md (an OUT given with either suffix names the same pair)."""
    stem = str(Path(out).with_suffix("")) if Path(out).suffix in (".json", ".md") else out
    return Path(f"{stem}.json"), Path(f"{stem}.md")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    config = load_script_config(args)
    root = require_data_root(config)
    found = {dataset.name: files for dataset in PAPER_DATASETS if (files := locate(dataset, root)) is not None}
    synthetic = synthetic_root(root)
    if not found and synthetic is None:
        raise FileNotFoundError(f"no evaluation dataset under --data-root {root}: expected the synthetic corpus (a "
                                f"DONE file) or the reference's sub-folders (ESC-50-master/, UrbanSound8K/, "
                                f"VGGSound/, AudioSet_SL/, TAG/test/, ...; docs/datasets.md)")
    model, device = load_script_model(args, config)
    table = build_table(model, root, found, synthetic, config, device)
    table["run"] = {"checkpoint": str(config.eval.ckpt), "data_root": str(root), "device": str(device),
                    "config": str(args.config), "batch_size": config.eval.batch_size,
                    "precision": config.eval.precision}
    json_path, markdown_path = output_paths(args.out)
    text = markdown(table)
    write_json(json_path, table)
    markdown_path.write_text(text, encoding="utf-8")
    print(text + f"\nwritten to {json_path} and {markdown_path}")
    return table


if __name__ == "__main__":
    exit_script(run_script(main))
