"""The zero-shot scripts and the training loop end to end, as users run them, on generated data shaped like the
real sets; with `--reference-checkout`, also the reference's own zero_shot_classification.py on the ESC-50 files.

    python -m benchmarks.scripts [--preset paper|tiny] [--tasks esc50,sed,grounding,retrieval,train]
        [--clips esc50=312,sed=200,grounding=100,retrieval=100] [--repeats 1] [--split-repeats 1]
        [--device cpu|cuda] [--reference-checkout PATH --reference-site DIR] [--out FILE.json] [-- SCRIPT OPTIONS]

The data (MAKERS) and a random-weight checkpoint at the preset's size are written once into --workdir. Each
script runs as a subprocess (median wall: the user's number), then its `main` in a fresh process with timers
around its stages (`split_child`), then decoding, the model and the text tower alone: `evaluation / (model +
decode + text)` is 1.0 when the script adds nothing. `train`: pretrain.py on settings/quickstart.yaml for two
step counts, whose difference gives the time per step. More: docs/scripts_benchmark.md.
"""

from __future__ import annotations

# Only the standard library at the top: the split child times the script's imports from a fresh process.
import argparse
import contextlib
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
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = Path("/tmp/mga_clap_scripts")
TASKS = ("esc50", "sed", "grounding", "retrieval", "train")
DEFAULT_CLIPS = {"esc50": 312, "sed": 200, "grounding": 100, "retrieval": 100}
SCRIPTS = {"esc50": "zero_shot_clas.py", "sed": "zero_shot_sed.py", "grounding": "zero_shot_grounding.py",
           "retrieval": "zero_shot_retrieval.py"}
PROTOCOL_MODULES = {"esc50": "tools.eval.classification", "sed": "tools.eval.sed",
                    "grounding": "tools.eval.grounding", "retrieval": "tools.eval.retrieval"}
LABELS = ("dog_bark", "siren", "engine", "bell", "speech", "rain", "knock", "whistle", "hum", "bird_chirp")
ESC10_TARGETS = {0, 1, 10, 11, 12, 20, 21, 38, 40, 41}
ESC50_CATEGORIES = (
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow", "rain", "sea_waves",
    "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind", "pouring_water", "toilet_flush",
    "thunderstorm", "crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps", "laughing",
    "brushing_teeth", "snoring", "drinking_sipping", "door_wood_knock", "mouse_click", "keyboard_typing",
    "door_wood_creaks", "can_opening", "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick",
    "glass_breaking", "helicopter", "chainsaw", "siren", "car_horn", "engine", "train", "church_bells", "airplane",
    "fireworks", "hand_saw",
)
REFERENCE_ACCURACY = re.compile(r"ESC-50 Accuracy ([0-9.eE+-]+)")


def _write_audio(path: Path, seconds: float, rate: int, seed: int, tone: float = 0.3, pitch: float | None = None) -> None:
    """16-bit audio: a tone of amplitude `tone` (pitch from the seed by default) over noise."""
    import numpy as np
    import soundfile

    times = np.arange(round(seconds * rate)) / rate
    pitch = 150.0 + 37.0 * (seed % 60) if pitch is None else pitch
    signal = tone * np.sin(2 * np.pi * pitch * times) + 0.05 * np.random.default_rng(seed).standard_normal(times.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, signal.astype(np.float32), rate, subtype="PCM_16")


def kept(folder: str) -> Any:
    """Decorates `write(root, count)`: a maker of `workdir / folder` that writes it once per count (a MADE stamp)."""
    def decorate(write: Any) -> Any:
        def make(workdir: Path, count: int) -> Path:
            root, stamp = workdir / folder, workdir / folder / "MADE"
            if not (stamp.is_file() and stamp.read_text().strip() == str(count)):
                root.mkdir(parents=True, exist_ok=True)
                write(root, count)
                stamp.write_text(f"{count}\n")
            return root
        return make
    return decorate


def _write_rows(path: Path, header: list[str], rows: list[list[Any]], delimiter: str = "\t") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows([header, *rows])


@kept("ESC-50-master")
def make_esc50(root: Path, count: int) -> None:
    """ESC-50-master/ (audio/{fold}-{id}-A-{target}.wav, meta/esc50.csv): clip i of class i % 50, fold
    (i // 50) % 5 + 1; every other clip a tone over noise, the others noise."""
    for old in (root / "audio").glob("*.wav"):
        old.unlink()
    rows = []
    for index in range(count):
        target, fold = index % len(ESC50_CATEGORIES), (index // len(ESC50_CATEGORIES)) % 5 + 1
        row = {"filename": f"{fold}-{100000 + index}-A-{target}.wav", "fold": fold, "target": target,
               "category": ESC50_CATEGORIES[target], "esc10": target in ESC10_TARGETS, "src_file": 100000 + index,
               "take": "A"}
        _write_audio(root / "audio" / row["filename"], 5.0, 44100, index, 0.3 * (index % 2), 200.0 + 40.0 * target)
        rows.append(row)
    _write_rows(root / "meta" / "esc50.csv", list(rows[0]), [list(row.values()) for row in rows], ",")


@kept("AudioSet_SL")
def make_sed(root: Path, count: int) -> None:
    """AudioSet-strong as WavCaps ships it: AudioSet_SL/ with audio/AudioSet_SL_eval/*.flac (10 s at 32 kHz)
    and metadata/audioset_eval_strong.tsv (two events per clip) and _durations.tsv."""
    events, durations = [], []
    for index in range(count):
        name = f"Y{index:08d}.flac"
        _write_audio(root / "audio" / "AudioSet_SL_eval" / name, 10.0, 32000, index)
        onset = 0.5 + (index % 7)
        events += [[name, onset, onset + 2.0, LABELS[index % len(LABELS)]],
                   [name, 1.0, 4.5, LABELS[(3 * index + 1) % len(LABELS)]]]
        durations.append([name, 10.0])
    _write_rows(root / "metadata" / "audioset_eval_strong.tsv", ["filename", "onset", "offset", "event_label"],
                events)
    _write_rows(root / "metadata" / "audioset_eval_strong_durations.tsv", ["filename", "duration"], durations)


@kept("AudioGrounding")
def make_grounding(root: Path, count: int) -> None:
    """An AudioGrounding folder (audio/*.wav, 10 s at 44.1 kHz; test.json, two phrases per clip)."""
    entries = []
    for index in range(count):
        name = f"{index:06d}.wav"
        _write_audio(root / "audio" / name, 10.0, 44100, index)
        first, second = LABELS[index % len(LABELS)].replace("_", " "), LABELS[(index + 4) % len(LABELS)]
        entries.append({"audio_id": name, "audiocap_id": index, "tokens": f"a {first} and then a {second}",
                        "phrases": [{"phrase": f"a {first}", "start_index": 0, "end_index": 1,
                                     "segments": [[1.0, 3.5]]},
                                    {"phrase": f"a {second.replace('_', ' ')}", "start_index": 4, "end_index": 5,
                                     "segments": [[5.0, 9.0]]}]})
    (root / "test.json").write_text(json.dumps(entries))


@kept("Clotho")
def make_retrieval(root: Path, count: int) -> None:
    """A Clotho-shaped evaluation folder: audio/*.wav of 15-30 s at 44.1 kHz, test.json with five captions."""
    data = []
    for index in range(count):
        name, seconds = f"clip_{index:05d}.wav", 15.0 + (index * 7.3) % 15.0
        _write_audio(root / "audio" / name, seconds, 44100, index)
        label = LABELS[index % len(LABELS)].replace("_", " ")
        data.append({"id": f"clip_{index:05d}", "audio": f"audio/{name}", "duration": seconds,
                     **{f"caption_{k}": f"a {label} heard {word} in the distance number {index}"
                        for k, word in enumerate(("once", "twice", "again", "softly", "loudly"), start=1)}})
    (root / "test.json").write_text(json.dumps({"num_captions_per_audio": 5, "data": data}))


MAKERS = {"esc50": make_esc50, "sed": make_sed, "grounding": make_grounding, "retrieval": make_retrieval}


def make_checkpoint(workdir: Path, preset: str) -> Path:
    """A random-weight checkpoint at the preset's size, saved as pretrain.py saves its model files (kept)."""
    path = workdir / f"{preset}_random.pt"
    if path.is_file():
        return path
    import torch

    from benchmarks.measure import preset_config
    from models.ase_model import ASE
    from models.checkpoint import reference_state_dict

    torch.manual_seed(0)
    model = ASE(preset_config(preset))
    workdir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".pt.partial")
    torch.save({"model": reference_state_dict(model), "model_config": model.config.to_dict(), "epoch": 0}, partial)
    os.replace(partial, path)
    return path


class Timer:
    """Wraps a callable and adds its wall time to a total (the wrapped function itself is unchanged)."""

    def __init__(self, function: Any):
        self.function, self.seconds, self.calls, self.last, self.arguments = function, 0.0, 0, None, []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        self.arguments.append((args, kwargs))
        try:
            self.last = self.function(*args, **kwargs)
            return self.last
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


def split_child(task: str, argv: list[str], preset: str, model_repeats: int) -> dict[str, Any]:
    """In this (fresh) process: the script's `main` with timers around its stages; then decoding alone, the
    model alone at the script's batch size and the text tower alone on the script's texts."""
    import importlib

    start = time.perf_counter()
    script = importlib.import_module(SCRIPTS[task].removesuffix(".py"))
    import_s = time.perf_counter() - start

    import torch

    from models.memory import reuse_freed_memory
    from tools.eval import embedding
    from tools.eval.loader_defaults import eval_batch_size, eval_num_workers

    protocol = importlib.import_module(PROTOCOL_MODULES[task])
    reuse_freed_memory()  # as the scripts' run_script does before main
    patched = [(script, "load_script_model"), (protocol, "embed_audio_files"), (protocol, "embed_texts"),
               (embedding, "_encode_items")]
    timers = {name: Timer(getattr(owner, name)) for owner, name in patched}
    with contextlib.ExitStack() as stack:
        for owner, name in patched:
            stack.enter_context(mock.patch.object(owner, name, timers[name]))
        start = time.perf_counter()
        result = script.main(argv)
    main_s = time.perf_counter() - start
    load_s = timers["load_script_model"].seconds
    audio_s, model_s, text_s = (timers[name].seconds for name in ("embed_audio_files", "_encode_items", "embed_texts"))
    config = script.load_script_config(script.parse_args(argv))
    model, device = timers["load_script_model"].last
    batch_size = eval_batch_size(config.eval.batch_size, device)
    decode_s, decoded = decode_alone(task, config, model.sample_rate)
    start = time.perf_counter()
    for call_args, call_kwargs in timers["embed_texts"].arguments:   # the text tower on the script's own texts
        timers["embed_texts"].function(*call_args, **call_kwargs)
    text_alone_s = time.perf_counter() - start
    return {
        "task": task, "script": SCRIPTS[task], "num_clips": result.get("num_clips", decoded), "batch_size": batch_size,
        "num_workers": eval_num_workers(config.eval.num_workers, device), "torch_threads": torch.get_num_threads(),
        "device": str(device), "metrics": _headline(result),
        "stages_s": {"import": import_s, "config_and_model_load": load_s, "evaluate": main_s - load_s,
                     "audio_embedding": audio_s, "audio_model": model_s, "audio_waiting_for_loader": audio_s - model_s,
                     "text_embedding": text_s, "metrics_and_other": main_s - load_s - audio_s - text_s},
        "model_calls": timers["_encode_items"].calls,
        "decode_alone": {"seconds": decode_s, "clips": decoded, "s_per_clip": decode_s / max(decoded, 1)},
        "model_alone": model_alone_per_clip(model, preset, batch_size, model_repeats, device),
        "text_alone_s": text_alone_s,
    }


def _headline(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("accuracy_percent", "t2a_R1_percent", "a2t_R1_percent", "num_clips", "num_skipped")
    return {key: value for key, value in result.items() if key in keys or key.startswith("psds")}


def decode_alone(task: str, config: Any, sample_rate: int) -> tuple[float, int]:
    """Read, resample and pad every audio file of the task's set in this one process (AudioFileDataset)."""
    from data_handling.eval_sets.layouts import find_eval_files
    from tools.eval.cli import data_root
    from tools.eval.embedding import AudioFileDataset

    files = find_eval_files(data_root(config, task), task)
    if task == "retrieval":
        paths = sorted((files.folder / "audio").glob("*.wav"))
        dataset = AudioFileDataset(paths, sample_rate, "none", long_audio="crop")
    else:
        paths = sorted(path for path in Path(files.paths["audio"]).iterdir() if path.suffix in (".wav", ".flac"))
        dataset = AudioFileDataset(paths, sample_rate, "zero" if task == "esc50" else "tile", long_audio="cut")
    start = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    return time.perf_counter() - start, len(dataset)


def model_alone_per_clip(model: Any, preset: str, batch_size: int, repeats: int, device: Any) -> dict[str, Any]:
    """benchmarks.measure's infer step (encode_audio + msc, 10 s random clips) on the loaded model at the
    script's batch size: one warm-up step, then `repeats` timed ones (median)."""
    from benchmarks.measure import BenchmarkSettings, make_infer_step, time_steps

    settings = BenchmarkSettings(preset=preset, batch_size=batch_size, device=str(device), warmup=1,
                                 repeats=repeats)
    walls, _ = time_steps(make_infer_step(model, settings), settings)
    step_s = statistics.median(walls)
    return {"batch_size": batch_size, "step_s_all": walls, "step_s_median": step_s, "s_per_clip": step_s / batch_size}


def timed_run(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command from the repository root; wall seconds, return code and the tails of its output."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    return {"wall_s": time.perf_counter() - start, "returncode": done.returncode,
            "stdout_tail": done.stdout[-2000:], "stderr_tail": done.stderr[-2000:]}


def run_split(task: str, command: list[str], preset: str, model_repeats: int, workdir: Path) -> dict[str, Any]:
    """`split_child` in a fresh process (so that the script's imports are timed from nothing)."""
    out = workdir / f"split_{task}.json"
    out.unlink(missing_ok=True)
    child = [sys.executable, "-m", "benchmarks.scripts", "--split-child", task, "--preset", preset,
             "--model-repeats", str(model_repeats), "--split-out", str(out), "--", *command[2:]]
    run = timed_run(child)
    if run["returncode"] != 0 or not out.is_file():
        raise RuntimeError(f"the in-process split of {task} failed (exit {run['returncode']}):\n{run['stderr_tail']}")
    return {**json.loads(out.read_text()), "wall_s": run["wall_s"]}


def floor_ratio(split: dict[str, Any]) -> tuple[float, float]:
    """(evaluation / floor, floor) of one split run; floor = clips x (model alone + decoding per clip) + the text
    tower alone on the script's texts."""
    floor = split["num_clips"] * (split["model_alone"]["s_per_clip"] + split["decode_alone"]["s_per_clip"]) \
        + split["text_alone_s"]
    return split["stages_s"]["evaluate"] / floor, floor


def median_split(splits: list[dict[str, Any]]) -> tuple[float, float, dict[str, Any]]:
    """(ratio, floor, split) of the split run whose ratio is the (low) median of all runs'."""
    ranked = sorted(((*floor_ratio(split), split) for split in splits), key=lambda entry: entry[0])
    return ranked[(len(ranked) - 1) // 2]


def run_script(task: str, root: Path, ckpt: Path, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    out = workdir / f"result_{task}.json"
    command = [sys.executable, SCRIPTS[task], "--data-root", str(root), "--ckpt", str(ckpt), "--device",
               args.device, "--out", str(out), *args.script_args, *(["--dataset", "esc50"] if task == "esc50" else [])]
    runs = []
    for _ in range(args.repeats):
        out.unlink(missing_ok=True)
        run = timed_run(command)
        run["result"] = _headline(json.loads(out.read_text())) if run["returncode"] == 0 and out.is_file() else None
        runs.append(run)
    walls = [run["wall_s"] for run in runs]
    splits = [run_split(task, command, args.preset, args.model_repeats, workdir) for _ in range(args.split_repeats)]
    ratio, floor, split = median_split(splits)
    wall = statistics.median(walls)
    return {"command": command, "succeeded": all(run["returncode"] == 0 for run in runs), "runs": runs,
            "wall_s_median": wall, "wall_s_all": walls, "clips_per_s": split["num_clips"] / wall, "split": split,
            "model_decode_text_s": floor, "evaluation_over_floor": ratio,
            "evaluation_over_floor_all": [floor_ratio(one)[0] for one in splits], "wall_over_floor": wall / floor,
            "metrics_match": runs[-1]["result"] is not None and all(
                runs[-1]["result"].get(key) == value for key, value in split["metrics"].items())}


def run_reference(args: argparse.Namespace, root: Path, ckpt: Path, workdir: Path) -> dict[str, Any]:
    """The reference's zero_shot_classification.py (benchmarks.reference_code's command line), `repeats` times."""
    if args.preset != "paper":
        return {"ran": False, "why": "the reference's ASE fixes a 4096-code codebook and HTS-AT's width; only the "
                                     "paper preset's checkpoint loads in its strict loader"}
    code = "from models.text_encoder import minilm_folder; print(minilm_folder())"  # ours, kept out of this process
    tokenizer_dir = timed_run([sys.executable, "-c", code])["stdout_tail"].strip().splitlines()[-1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*args.reference_site, str(REPO_ROOT), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "benchmarks.reference_code", "--checkout", args.reference_checkout,
               "--data-root", str(root.parent), "--ckpt", str(ckpt), "--run-dir", str(workdir / "reference_run"),
               "--tokenizer-dir", tokenizer_dir, "--device", args.device]
    runs = [timed_run(command, env) for _ in range(args.repeats)]
    for run in runs:
        match = REFERENCE_ACCURACY.search(run["stdout_tail"])
        run["accuracy_percent"] = 100 * float(match.group(1)) if match else None
    walls = [run["wall_s"] for run in runs]
    return {"ran": True, "succeeded": all(run["returncode"] == 0 and run["accuracy_percent"] is not None
                                          for run in runs),
            "command": command, "runs": runs, "wall_s_median": statistics.median(walls), "wall_s_all": walls,
            "accuracy_percent": runs[-1]["accuracy_percent"]}


def run_training(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """pretrain.py on the quickstart config for two step counts; the slope is the time per step."""
    counts = [int(value) for value in args.train_steps.split(",")]
    runs = {}
    for steps in counts:
        overrides = ["training.epochs=1", f"training.max_steps_per_epoch={steps}",
                     f"output_dir={workdir / 'train_outputs'}", *([f"device={args.device}"] * (args.device != "cpu")),
                     *args.train_set]
        command = [sys.executable, "pretrain.py", "-c", "settings/quickstart.yaml", "--exp-name",
                   f"suite_train_{steps}", *(item for override in overrides for item in ("--set", override))]
        runs[steps] = timed_run(command)
        if runs[steps]["returncode"] != 0:
            raise RuntimeError(f"pretrain.py failed ({steps} steps):\n{runs[steps]['stderr_tail']}")
    low, high = min(counts), max(counts)
    per_step = (runs[high]["wall_s"] - runs[low]["wall_s"]) / (high - low) if high > low else None
    return {"config": "settings/quickstart.yaml", "runs": {str(key): value["wall_s"] for key, value in runs.items()},
            "s_per_step": per_step, "fixed_s": runs[low]["wall_s"] - (per_step or 0) * low}


def build_report(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    clips = {**DEFAULT_CLIPS, **{key: int(value) for key, value in
                                 (item.split("=") for item in args.clips.split(",") if item)}}
    tasks = [task for task in args.tasks.split(",") if task]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise SystemExit(f"unknown task(s) {unknown}; choose among {list(TASKS)}")
    if args.reference_checkout:
        if "esc50" not in tasks:
            raise SystemExit("--reference-checkout runs the reference's ESC-50 script: add esc50 to --tasks")
        from benchmarks.reference_code import check_checkout
        check_checkout(args.reference_checkout)  # a clear error before anything runs
    ckpt = make_checkpoint(workdir, args.preset)
    load_before = os.getloadavg()
    startup = statistics.median(timed_run([sys.executable, "-c", "pass"])["wall_s"] for _ in range(3))
    report: dict[str, Any] = {"settings": {"preset": args.preset, "clips": clips, "repeats": args.repeats,
                                           "device": args.device, "workdir": str(workdir), "checkpoint": str(ckpt),
                                           "script_args": args.script_args},
                              "python_startup_s": startup, "scripts": {}, "training": None, "reference": None}
    for task in tasks:
        if task == "train":
            report["training"] = run_training(args, workdir)
            continue
        root = MAKERS[task](workdir, clips[task])
        report["scripts"][task] = run_script(task, root, ckpt, args, workdir)
        if task == "esc50" and args.reference_checkout:
            report["reference"] = run_reference(args, root, ckpt, workdir)
    from benchmarks.measure import machine_info
    report["machine"] = {**machine_info(args.device), "load_average_before": load_before}
    return report


def markdown(report: dict[str, Any]) -> str:
    """One row per script: wall, clips/s, the stages, and how close evaluation comes to model + decoding."""
    lines = ["| script | clips | wall s | clips/s | import s | load s | evaluation s | of which model s | "
             "loader wait s | text s | metrics and other s | model alone s/clip | decode s/clip | text alone s | "
             "evaluation / (model + decode + text) |", "|---" * 15 + "|"]
    for run in report["scripts"].values():
        split, stages = run["split"], run["split"]["stages_s"]
        ratios = run["evaluation_over_floor_all"]
        spread = f" ({', '.join(f'{ratio:.3f}' for ratio in ratios)})" if len(ratios) > 1 else ""
        lines.append(f"| {split['script']} | {split['num_clips']} | {run['wall_s_median']:.1f} | "
                     f"{run['clips_per_s']:.2f} | {stages['import']:.1f} | {stages['config_and_model_load']:.1f} | "
                     f"{stages['evaluate']:.1f} | {stages['audio_model']:.1f} | "
                     f"{stages['audio_waiting_for_loader']:.1f} | {stages['text_embedding']:.1f} | "
                     f"{stages['metrics_and_other']:.2f} | {split['model_alone']['s_per_clip']:.4f} | "
                     f"{split['decode_alone']['s_per_clip']:.4f} | {split['text_alone_s']:.1f} | "
                     f"{run['evaluation_over_floor']:.3f}{spread} |")
    if report["scripts"]:
        first = next(iter(report["scripts"].values()))["split"]
        lines.append(f"\nbatch {first['batch_size']}, {first['num_workers']} loader processes, "
                     f"{first['torch_threads']} torch threads, device {first['device']}; python start-up "
                     f"{report['python_startup_s']:.2f} s")
    reference = report.get("reference")
    if reference and reference["ran"]:
        ours = report["scripts"]["esc50"]
        lines += ["", "| ESC-50 | wall s (median) | runs | accuracy % |", "|---|---|---|---|"]
        for name, run, accuracy in (("zero_shot_clas.py", ours, ours["split"]["metrics"].get("accuracy_percent")),
                                    ("reference zero_shot_classification.py", reference,
                                     reference["accuracy_percent"])):
            lines.append(f"| {name} | {run['wall_s_median']:.1f} | "
                         f"{', '.join(f'{wall:.1f}' for wall in run['wall_s_all'])} | {accuracy} |")
    training = report.get("training")
    if training:
        lines.append(f"\ntraining (quickstart config): runs {training['runs']} s; {training['s_per_step']:.3f} s "
                     f"per step, {training['fixed_s']:.1f} s start-up + end-of-epoch evaluation")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="data, checkpoint and run files (kept)")
    parser.add_argument("--preset", default="paper", choices=("paper", "tiny"))
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated, among %(default)s")
    parser.add_argument("--clips", default="", help=f"task=count,... (defaults: {DEFAULT_CLIPS})")
    parser.add_argument("--repeats", type=int, default=1, help="subprocess runs of each script (median)")
    parser.add_argument("--model-repeats", type=int, default=10, help="timed infer steps of the model alone")
    parser.add_argument("--split-repeats", type=int, default=1, help="in-process split runs of each script; the "
                        "ratio reported is their median, the stages those of the median run")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (passed to every script)")
    parser.add_argument("--train-steps", default="20,200", help="two step counts of the training runs")
    parser.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a --set override of the training runs (repeatable), e.g. synthetic.root=DIR")
    parser.add_argument("--reference-checkout", help="also run the reference's zero_shot_classification.py from "
                                                     "this checkout on the ESC-50 files (benchmarks/reference_code.py)")
    parser.add_argument("--reference-site", action="append", default=[], metavar="DIR", help="a folder put on the "
                        "reference run's PYTHONPATH (its torchaudio, torchcodec, ruamel.yaml; docs/scripts_benchmark.md)")
    parser.add_argument("--out", help="write the JSON report here")
    parser.add_argument("--split-child", help=argparse.SUPPRESS)
    parser.add_argument("--split-out", help=argparse.SUPPRESS)
    parser.add_argument("script_args", nargs="*", help="further options passed to every script, after --")
    args = parser.parse_args(argv)
    if min(args.repeats, args.split_repeats, args.model_repeats) < 1:
        parser.error("--repeats, --split-repeats and --model-repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    report = split_child(args.split_child, args.script_args, args.preset, args.model_repeats) \
        if args.split_child else build_report(args)
    from benchmarks.measure import write_json  # imports torch: after the split child's timings

    if args.split_child:
        return write_json(report, args.split_out)
    print(markdown(report))
    failed = [run for run in report["scripts"].values() if not run["succeeded"]]
    if failed:
        print("a script failed:\n" + failed[0]["runs"][-1]["stderr_tail"], file=sys.stderr)
    write_json(report, args.out)
    return report


if __name__ == "__main__":
    main()
