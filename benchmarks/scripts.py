"""End-to-end benchmark of `zero_shot_clas.py` as users run it, on an ESC-50-shaped data set.

    python -m benchmarks.scripts [--preset paper|tiny] [--clips 312] [--repeats 3] [--workdir DIR]
                                 [--reference-checkout PATH --reference-site DIR] [--out FILE.json]

1. Writes (once; kept in --workdir) `ESC-50-master/audio/{fold}-{id}-A-{target}.wav` and
   `ESC-50-master/meta/esc50.csv` in ESC-50's layout (docs/datasets.md): --clips clips of 5 s, 44.1 kHz,
   mono 16-bit, a tone over noise, classes ESC-50's 50 categories in target order, folds 1-5.
2. Writes (once) a checkpoint with random weights at the preset's size, as pretrain.py saves its model
   files: {'model': reference_state_dict, 'model_config': ...}, so the script rebuilds the model from it
   and the reference's strict loader accepts it too.
3. Runs `python zero_shot_clas.py --dataset esc50 --data-root ... --ckpt ... --device cpu --out ...` as a
   subprocess --repeats times: the wall time is the user's number.
4. Explains it with benchmarks.script_suite's in-process split in a fresh process: import of the script,
   config + model load, then the script's own `main` with timers around the functions it calls
   (embed_audio_files, its model part `_encode_items`, embed_texts; the rest is metrics and output); then,
   apart, decoding + resampling every clip in one process (AudioFileDataset items, as a loader process makes
   them) and the model alone (benchmarks.steps' infer step at the script's batch size). Nothing of the
   protocol is changed: the timers wrap the module attributes the script looks up, for that process only.
5. `--reference-checkout PATH`: the reference's own zero_shot_classification.py on the same files and
   checkpoint, through benchmarks/reference_script.py (run-time patches only; see there).

Prints a markdown table; `--out` writes the JSON report.
"""

from __future__ import annotations

# Only the standard library at the top: the split child times the script's imports from a fresh process.
import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = Path("/tmp/mga_clap_scripts")
ESC50_FOLDER = "ESC-50-master"
SAMPLE_RATE = 44100
CLIP_SECONDS = 5
FOLDS = 5
ESC10_TARGETS = {0, 1, 10, 11, 12, 20, 21, 38, 40, 41}
ESC50_CATEGORIES = (
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind", "pouring_water",
    "toilet_flush", "thunderstorm",
    "crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps", "laughing", "brushing_teeth",
    "snoring", "drinking_sipping",
    "door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks", "can_opening", "washing_machine",
    "vacuum_cleaner", "clock_alarm", "clock_tick", "glass_breaking",
    "helicopter", "chainsaw", "siren", "car_horn", "engine", "train", "church_bells", "airplane", "fireworks",
    "hand_saw",
)
SCRIPT = "zero_shot_clas.py"


# ---------------------------------------------------------------------------------------------- data
def esc50_rows(num_clips: int) -> list[dict[str, Any]]:
    """The csv rows of `num_clips` clips: class i % 50, fold (i // 50) % 5 + 1 (each class in several folds)."""
    rows = []
    for index in range(num_clips):
        target, fold = index % len(ESC50_CATEGORIES), (index // len(ESC50_CATEGORIES)) % FOLDS + 1
        source = 100000 + index
        rows.append({"filename": f"{fold}-{source}-A-{target}.wav", "fold": fold, "target": target,
                     "category": ESC50_CATEGORIES[target], "esc10": target in ESC10_TARGETS,
                     "src_file": source, "take": "A"})
    return rows


def make_esc50(workdir: Path, num_clips: int) -> Path:
    """ESC-50-master/ with `num_clips` clips under `workdir` (kept when already made for that count)."""
    import numpy as np
    import soundfile

    root = workdir / ESC50_FOLDER
    stamp = root / "MADE"
    if stamp.is_file() and stamp.read_text().strip() == str(num_clips):
        return root
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    for old in (root / "audio").glob("*.wav"):
        old.unlink()
    rows = esc50_rows(num_clips)
    time_axis = np.arange(SAMPLE_RATE * CLIP_SECONDS) / SAMPLE_RATE
    for index, row in enumerate(rows):
        rng = np.random.default_rng(index)
        tone = 0.3 * np.sin(2 * np.pi * (200.0 + 40.0 * row["target"]) * time_axis)
        signal = tone * (index % 2) + 0.05 * rng.standard_normal(time_axis.shape)
        soundfile.write(root / "audio" / row["filename"], signal.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    with open(root / "meta" / "esc50.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    stamp.write_text(f"{num_clips}\n")
    return root


def make_checkpoint(workdir: Path, preset: str) -> Path:
    """A random-weight checkpoint at the preset's size, saved as pretrain.py saves its model files (kept)."""
    path = workdir / f"{preset}_random.pt"
    if path.is_file():
        return path
    import torch

    from benchmarks.presets import preset_config
    from models.ase_model import ASE
    from models.checkpoint import reference_state_dict

    torch.manual_seed(0)
    model = ASE(preset_config(preset))
    workdir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".pt.partial")
    torch.save({"model": reference_state_dict(model), "model_config": model.config.to_dict(), "epoch": 0}, partial)
    os.replace(partial, path)
    return path


# ---------------------------------------------------------------------------------------------- subprocess runs
def script_command(root: Path, ckpt: Path, out: Path, batch_size: int | None, num_workers: int | None,
                   device: str = "cpu") -> list[str]:
    command = [sys.executable, SCRIPT, "--dataset", "esc50", "--data-root", str(root), "--ckpt", str(ckpt),
               "--device", device, "--out", str(out)]
    if batch_size is not None:
        command += ["--batch-size", str(batch_size)]
    if num_workers is not None:
        command += ["--num-workers", str(num_workers)]
    return command


def timed_run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command; wall seconds, return code and the tails of its output."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "returncode": done.returncode, "stdout_tail": done.stdout[-2000:],
            "stderr_tail": done.stderr[-2000:]}


def python_startup_s(repeats: int = 3) -> float:
    """Median wall time of `python -c pass` (the interpreter's own start-up)."""
    return statistics.median(timed_run([sys.executable, "-c", "pass"], REPO_ROOT)["wall_s"] for _ in range(repeats))


def run_script_repeats(command: list[str], out: Path, repeats: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        out.unlink(missing_ok=True)
        run = timed_run(command, REPO_ROOT)
        if run["returncode"] == 0 and out.is_file():
            run["accuracy_percent"] = json.loads(out.read_text())["accuracy_percent"]
        runs.append(run)
    walls = [run["wall_s"] for run in runs]
    ok = all(run["returncode"] == 0 for run in runs)
    return {"command": command, "runs": runs, "succeeded": ok, "wall_s_median": statistics.median(walls),
            "wall_s_all": walls, "accuracy_percent": runs[-1].get("accuracy_percent")}


# ---------------------------------------------------------------------------------------------- reference
REFERENCE_ACCURACY = re.compile(r"ESC-50 Accuracy ([0-9.eE+-]+)")


def run_reference(checkout: Path, site: list[str], root: Path, ckpt: Path, workdir: Path, preset: str,
                  repeats: int, device: str = "cpu") -> dict[str, Any]:
    """The reference's zero_shot_classification.py through benchmarks/reference_script.py, `repeats` times."""
    from benchmarks.reference_code import check_checkout

    if preset != "paper":
        return {"ran": False, "why": "the reference's ASE fixes a 4096-code codebook and HTS-AT's width; only the "
                                     "paper preset's checkpoint loads in its strict loader"}
    checkout = check_checkout(checkout)
    tokenizer_dir = _minilm_folder_in_subprocess()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*site, str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [sys.executable, "-m", "benchmarks.reference_script", "--checkout", str(checkout),
               "--data-root", str(root.parent), "--ckpt", str(ckpt), "--run-dir", str(workdir / "reference_run"),
               "--tokenizer-dir", tokenizer_dir, "--device", device]
    runs = []
    for _ in range(repeats):
        run = timed_run(command, REPO_ROOT, env)
        match = REFERENCE_ACCURACY.search(run["stdout_tail"])
        run["accuracy_percent"] = 100 * float(match.group(1)) if match else None
        runs.append(run)
    walls = [run["wall_s"] for run in runs]
    ok = all(run["returncode"] == 0 and run["accuracy_percent"] is not None for run in runs)
    return {"ran": True, "succeeded": ok, "command": command, "site": site, "runs": runs,
            "wall_s_median": statistics.median(walls), "wall_s_all": walls,
            "accuracy_percent": runs[-1]["accuracy_percent"]}


def _minilm_folder_in_subprocess() -> str:
    """Where the MiniLM package keeps bert-base-uncased's vocabulary (asked in a subprocess: keeps our `models`
    out of this process, whose import the split child times)."""
    code = "from models.text_encoder import minilm_folder; print(minilm_folder())"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


# ---------------------------------------------------------------------------------------------- report
def build_report(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir)
    load_before = os.getloadavg()
    root = make_esc50(workdir, args.clips)
    ckpt = make_checkpoint(workdir, args.preset)
    out = workdir / "script_result.json"
    command = script_command(root, ckpt, out, args.batch_size, args.num_workers, args.device)
    startup_s = python_startup_s()
    script = run_script_repeats(command, out, args.repeats)
    from benchmarks.script_suite import run_split

    split = run_split("esc50", command, args.preset, args.model_repeats, workdir)
    split["accuracy_percent"] = split["metrics"].get("accuracy_percent")
    reference = None
    if args.reference_checkout:
        reference = run_reference(Path(args.reference_checkout), args.reference_site, root, ckpt, workdir,
                                  args.preset, args.repeats, args.device)
    import torch
    return {
        "settings": {"preset": args.preset, "clips": args.clips, "repeats": args.repeats, "workdir": str(workdir),
                     "data_root": str(root), "checkpoint": str(ckpt), "batch_size": split["batch_size"],
                     "num_workers": split["num_workers"], "model_repeats": args.model_repeats},
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": split["torch_threads"],
                    "python": sys.version.split()[0], "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "python_startup_s": startup_s,
        "script": script,
        "split": split,
        "accuracy_matches": script["accuracy_percent"] == split["accuracy_percent"],
        "reference": reference,
    }


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown table: seconds and seconds per clip of each stage."""
    split, stages = report["split"], report["split"]["stages_s"]
    clips = split["num_clips"]
    model_clip, decode_clip = split["model_alone"]["s_per_clip"], split["decode_alone"]["s_per_clip"]
    wall = report["script"]["wall_s_median"]

    def row(name: str, seconds: float | None, note: str = "") -> str:
        if seconds is None:
            return f"| {name} | | | {note} |"
        return f"| {name} | {seconds:.2f} | {seconds / clips:.4f} | {note} |"

    settings = report["settings"]
    lines = [f"preset {settings['preset']}, {clips} clips, batch {split['batch_size']}, "
             f"{split['num_workers']} loader workers, {split['torch_threads']} torch threads, "
             f"{report['machine']['cpus']} CPUs",
             "", "| stage | s | s/clip | note |", "|---|---|---|---|",
             row("**zero_shot_clas.py, wall (subprocess)**", wall,
                 f"median of {len(report['script']['wall_s_all'])}: "
                 + ", ".join(f"{value:.1f}" for value in report["script"]["wall_s_all"])
                 + f"; {clips / wall:.2f} clips/s"),
             row("python start-up", report["python_startup_s"], "`python -c pass`"),
             row("import zero_shot_clas", stages["import"], "in-process split from here on"),
             row("config + model load", stages["config_and_model_load"], ""),
             row("audio embedding (embed_audio_files)", stages["audio_embedding"],
                 f"{split['model_calls']} model calls"),
             row("- of which model (_encode_items)", stages["audio_model"], ""),
             row("- of which waiting for the loader", stages["audio_waiting_for_loader"],
                 "decoding in loader processes or inline"),
             row("text embedding (one prompt per class)", stages["text_embedding"], ""),
             row("metrics, csv, prompts, output", stages["metrics_and_other"], ""),
             row("decode + resample alone, 1 process", split["decode_alone"]["seconds"], "AudioFileDataset items"),
             row("model alone (benchmarks infer step) x clips", model_clip * clips,
                 f"batch {split['model_alone']['batch_size']}, median step {split['model_alone']['step_s_median']:.2f} s"),
             row("model alone + decode, x clips", (model_clip + decode_clip) * clips, "the floor without overlap"),
             ]
    reference = report.get("reference")
    if reference and reference.get("ran"):
        lines.append(row("**reference zero_shot_classification.py, wall**", reference["wall_s_median"],
                         f"median of {len(reference['wall_s_all'])}: "
                         + ", ".join(f"{value:.1f}" for value in reference["wall_s_all"])
                         + f"; batch 1, torchaudio load + Resample; accuracy {reference['accuracy_percent']}"))
    lines += ["", f"accuracy: script {report['script']['accuracy_percent']}, in-process {split['accuracy_percent']}"
                  f" (equal: {report['accuracy_matches']})"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="data, checkpoint and run files (kept)")
    parser.add_argument("--preset", default="paper", choices=("paper", "tiny"))
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda, for both scripts")
    parser.add_argument("--clips", type=int, default=312, help="ESC-50-shaped clips (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="subprocess runs of the script (median reported)")
    parser.add_argument("--model-repeats", type=int, default=10, help="timed infer steps of the model alone")
    parser.add_argument("--batch-size", type=int, help="passed to the script (default: the script's, auto)")
    parser.add_argument("--num-workers", type=int, help="passed to the script (default: the script's, auto)")
    parser.add_argument("--reference-checkout", help="also run the reference's zero_shot_classification.py from "
                                                     "this checkout (benchmarks/reference_script.py)")
    parser.add_argument("--reference-site", action="append", default=[], metavar="DIR",
                        help="a folder put on the reference run's PYTHONPATH (its torchaudio, torchcodec and "
                             "ruamel.yaml; see docs/scripts_benchmark.md); repeatable")
    parser.add_argument("--out", help="write the JSON report here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    report = build_report(args)
    print(markdown(report))
    if not report["script"]["succeeded"]:
        print("the script failed:\n" + report["script"]["runs"][-1]["stderr_tail"], file=sys.stderr)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1, default=str) + "\n")
    return report


if __name__ == "__main__":
    main()
